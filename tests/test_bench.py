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


@pytest.mark.slow
def test_training_cost_benchmark_compares_strategies_against_full_fine_tuning(tmp_path):
    out = tmp_path / "cost.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench/training_cost.py"), "--datasets", "easy_vqa", "--families", "resnet_bert",
         "--strategies", "full_fp32", "frozen_cached", "--max-images", "12", "--max-epochs", "1",
         "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| easy_vqa | resnet_bert | frozen_cached |" in result.stdout
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["full_fp32"]["speedup_train"] == 1.0 and rows["full_fp32"]["test_accuracy_delta_points"] == 0.0
    cached, full = rows["frozen_cached"], rows["full_fp32"]
    assert cached["features_s"] > 0 and full["features_s"] == 0
    assert cached["trainable_params"] < full["trainable_params"]
    assert cached["speedup_train"] == pytest.approx(full["train_s"] / cached["train_s"])
    assert all(0 <= r["test_accuracy"] <= 1 and r["peak_rss_mb"] > 0 and r["train_samples_per_s"] > 0 for r in rows.values())


@pytest.mark.slow
def test_paper_gpu_benchmark_smoke_run_on_cpu(tmp_path):
    out = tmp_path / "paper.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench/paper_gpu.py"), "--device", "cpu", "--families", "resnet_bert",
         "--batch-size", "2", "--steps", "1", "--precisions", "fp32", "--out", str(out)],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"full", "lora_text", "frozen_cached"}
    # The study's ResNet50 + BERT-base: ~135M parameters, all trained in full fine-tuning.
    assert 130e6 < rows["full"]["total_params"] < 140e6 and rows["full"]["trainable_params"] == rows["full"]["total_params"]
    assert rows["frozen_cached"]["trainable_params"] < rows["lora_text"]["trainable_params"] < rows["full"]["trainable_params"] / 20
    assert all(r["train_samples_per_s"] > 0 for r in rows.values())
