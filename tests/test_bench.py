"""The benchmarks: their timing rules, their training step, their strategies as parameter
overrides, and the GPU check's whole code path run on the CPU at tiny sizes."""

import dataclasses
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vqalab.params import load_params

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
timing = importlib.import_module("timing")
loopstep = importlib.import_module("loopstep")
# PYTHON: gpu_check.sh runs this interpreter (the project's), not whatever python3 is on PATH.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable,
       "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def test_warm_up_is_not_timed_and_the_median_ignores_one_slow_round():
    calls = {"slow": 0}
    slow_rounds = []

    def slow_first_steps():
        calls["slow"] += 1
        if calls["slow"] <= 2:  # the warm-up: compiling, allocating
            time.sleep(0.2)
        elif calls["slow"] in slow_rounds:
            time.sleep(0.2)

    slow_rounds.append(2 + 1)  # the first timed step (round 0): one outlier round
    timings = timing.measure([timing.Variant("v", slow_first_steps, samples=10)], device=torch.device("cpu"),
                             warmup=2, steps=1, repeats=3)
    (result,) = timings
    assert calls["slow"] == 2 + 3
    assert len(result.rounds) == 3 and min(result.rounds) < 50  # the outlier round: 10 samples in 0.2 s
    assert result.samples_per_s > 1000  # the median: a fast round, not the warm-up nor the outlier
    assert result.samples_per_s_min == min(result.rounds)


def test_variants_are_interleaved_in_rotated_order_and_contexts_wrap_only_their_own_steps():
    order, inside = [], {"a": False}

    class Context:
        def __enter__(self):
            inside["a"] = True

        def __exit__(self, *exc):
            inside["a"] = False

    def step(name):
        def run():
            order.append(name)
            assert inside["a"] == (name == "a")
        return run

    variants = [timing.Variant(n, step(n), samples=1, context=(Context if n == "a" else timing.contextlib.nullcontext))
                for n in "abc"]
    timing.measure(variants, device=torch.device("cpu"), warmup=1, steps=2, repeats=3)
    timed = order[3:]  # after one warm-up step each
    rounds = [[timed[i] for i in range(start, start + 6, 2)] for start in range(0, 18, 6)]
    assert rounds == [list("abc"), list("bca"), list("cab")]


def test_fewer_than_three_rounds_or_no_warm_up_are_refused():
    variant = timing.Variant("v", lambda: None, samples=1)
    with pytest.raises(ValueError, match="repeats must be >= 3"):
        timing.measure([variant], device=torch.device("cpu"), warmup=1, steps=1, repeats=2)
    with pytest.raises(ValueError, match="warm-up is never timed"):
        timing.measure([variant], device=torch.device("cpu"), warmup=0, steps=1, repeats=3)


def test_environment_names_the_libraries():
    record = timing.environment(torch.device("cpu"))
    assert record["torch"] and record["transformers"] and record["peft"] and record["gpu"] is None


def test_fast_math_is_restored_after_the_reference_steps():
    before = torch.backends.cudnn.benchmark
    with timing.fast_math(True):
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.benchmark == before


def test_the_benchmark_step_trains_exactly_as_the_loop_does(tmp_path):
    """loopstep.LoopStep drives the loop's own step as fit does: from the same build, one epoch of
    fit and three benchmark steps give the same weights."""
    from vqalab.harness import build_model
    from vqalab.training.loop import fit

    paper_gpu = importlib.import_module("paper_gpu")
    sources = paper_gpu.save_sources(tmp_path, paper_gpu.SIZES["tiny"])
    params = load_params(ROOT / "params.yaml", {
        "dataset": "vqa_rad", "model": "resnet_bert", "profile": "tiny",
        "resnet_bert": {"tiny": {"image_size": 32, "image_encoder": "resnet_small", "image_weights": None,
                                 "text_encoder": sources["bert"], "image_training": "full", "text_training": "full",
                                 "question_prior": False, "dropout": 0.2, "hidden_size": 16}},
        "train": {"max_epochs": 1, "batch_size": 4, "device": "cpu", "precision": "fp32"}})
    data = loopstep.synthetic_data(questions=12, val_questions=4, images=4, image_size=32, answers=5, words=6)
    looped = build_model(params, data)
    fit(looped, data.split("train"), data.split("val"), params=params.train, device=torch.device("cpu"),
        seed=params.seed)
    stepped = build_model(params, data)
    step = loopstep.LoopStep(stepped, data.split("train"), params=params.train, device=torch.device("cpu"),
                             seed=params.seed)
    for _ in range(3):
        step()
    assert step.last_loss is not None
    for (name, a), b in zip(looped.state_dict().items(), stepped.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert any(not torch.equal(a, b) for a, b in zip(looped.state_dict().values(),
                                                      build_model(params, data).state_dict().values()))


@pytest.mark.parametrize("dataset", ["easy_vqa", "vqa_rad"])
@pytest.mark.parametrize("family", ["resnet_bert", "pubmedclip"])
def test_every_training_cost_strategy_is_a_valid_parameter_override(dataset, family):
    """The strategies go through load_params with the data set's recipe: with question_prior on by
    default (VQA-RAD), the strategies that fine-tune the text encoder must turn it off."""
    training_cost = importlib.import_module("training_cost")
    for strategy, (family_changes, train_changes) in training_cost.STRATEGIES.items():
        overrides = training_cost.strategy_overrides(strategy, dataset=dataset, family=family,
                                                     train={"device": "cpu", "max_epochs": 2})
        params = load_params(ROOT / "params.yaml", overrides)
        assert params.model == family and params.dataset == dataset
        for name, value in {**family_changes}.items():
            assert getattr(params.family, name) == value
        for name, value in train_changes.items():
            assert getattr(params.train, name) == value  # the strategy wins over --max-epochs and the recipe
        if params.family.text_training != "frozen":
            assert not params.family.question_prior


def test_overrides_win_over_the_recipe_and_a_typo_fails():
    assert load_params(ROOT / "params.yaml", {"dataset": "easy_vqa"}).family.image_size == 64  # the recipe's
    assert load_params(ROOT / "params.yaml", {"dataset": "easy_vqa", "resnet_bert": {"tiny": {"image_size": 96}}}
                       ).family.image_size == 96
    with pytest.raises(ValueError, match="overrides.train.batchsize"):
        load_params(ROOT / "params.yaml", {"train": {"batchsize": 8}})


def test_predictions_are_batched_by_question_length_and_returned_in_order():
    from vqalab.evaluation.predict import predict_dataset

    data = loopstep.synthetic_data(questions=0, val_questions=7, images=2, image_size=8, answers=3, words=3)
    data.records[:] = [dataclasses.replace(r, question="x" * ((i * 5) % 7 + 1)) for i, r in enumerate(data.records)]
    batches = []

    class Echo(torch.nn.Module):
        def collate(self, items):
            return {"questions": [item["question"] for item in items]}

        def predict(self, batch, top_k=1, mode=None):
            batches.append(batch["questions"])
            return [[(q, 1.0)] for q in batch["questions"]]

    val = data.split("val")
    outputs = predict_dataset(Echo(), val, batch_size=3, device=torch.device("cpu"), progress=False)
    assert [o[0][0] for o in outputs] == [r.question for r in val.records]
    lengths = [len(q) for batch in batches for q in batch]
    assert lengths == sorted(lengths)


def run_bench(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run bench/<script> with ``args`` as a user would; it must succeed."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True,
                            env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_training_cost_benchmark_compares_strategies_against_full_fine_tuning(tmp_path):
    out = tmp_path / "cost.json"
    result = run_bench("training_cost.py", "--datasets", "easy_vqa", "--families", "resnet_bert",
                       "--strategies", "full_fp32", "frozen_cached", "--max-images", "12", "--max-epochs", "1",
                       "--work", str(tmp_path / "work"), "--out", str(out))
    assert "| easy_vqa | resnet_bert | frozen_cached |" in result.stdout
    rows = {r["strategy"]: r for r in json.loads(out.read_text())["rows"]}
    assert rows["full_fp32"]["speedup_train"] == 1.0 and rows["full_fp32"]["test_accuracy_delta_points"] == 0.0
    cached, full = rows["frozen_cached"], rows["full_fp32"]
    assert cached["features_s"] > 0 and full["features_s"] == 0
    assert cached["trainable_params"] < full["trainable_params"]
    assert cached["speedup_train"] == pytest.approx(full["train_s"] / cached["train_s"])
    assert all(0 <= r["test_accuracy"] <= 1 and r["peak_rss_mb"] > 0 and r["train_samples_per_s"] > 0 for r in rows.values())


@pytest.mark.slow
def test_gpu_check_runs_every_benchmark_on_the_cpu_and_prints_one_table(tmp_path):
    """bench/gpu_check.sh --device cpu: the GPU check's code path at tiny sizes (< 2 minutes)."""
    result = subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh"), "--device", "cpu"], capture_output=True,
                            text=True, env={**ENV, "OUT": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| figure | value | unit | reference | ratio | target | met |" in result.stdout
    assert "study training time (resnet_bert" in result.stdout
    paper = json.loads((tmp_path / "paper_gpu.json").read_text())
    rows = paper["rows"]
    assert paper["environment"]["torch"] and paper["repeats"] >= 3
    references = {(r["batch_size"], r["precision"]) for r in rows if r["kind"] == "reference"}
    full = [r for r in rows if r["family"] == "resnet_bert" and r["strategy"] == "full"]
    assert {(r["batch_size"], r["precision"]) for r in full} == references == {(4, "fp32"), (4, "bf16")}
    for r in full:
        assert r["ratio_to_reference"] == pytest.approx(r["samples_per_s"] / r["reference_samples_per_s"])
        assert len(r["rounds"]) == paper["repeats"] and r["samples_per_s_min"] <= r["samples_per_s"] <= r["samples_per_s_max"]
    assert {r["family"] for r in rows} == {"resnet_bert", "reference", "pubmedclip", "vilt"}
    qwen = json.loads((tmp_path / "qwen2vl_gpu.json").read_text())
    assert {r["mode"] for r in qwen["rows"]} == {"train", "generate"}
    assert all(r["samples_per_s"] > 0 for r in qwen["rows"])
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    estimate = summary["study_estimate"]
    assert set(estimate["per_family_s"]) == {"resnet_bert", "pubmedclip", "vilt", "qwen2vl"} and not estimate["missing"]
    cached = next(r for r in rows if r["strategy"] == "frozen_cached" and r["precision"] == "fp32")
    expected = 3064 * (20 / next(r["samples_per_s"] for r in full if r["precision"] == "fp32")
                       + 20 / next(r["samples_per_s"] for r in rows if r["family"] == "pubmedclip" and r["precision"] == "fp32")
                       + 20 / next(r["samples_per_s"] for r in rows if r["family"] == "vilt" and r["precision"] == "fp32")
                       + 5 / next(r["samples_per_s"] for r in qwen["rows"] if r["mode"] == "train"
                                  and r["gradient_checkpointing"] == qwen["paper_gradient_checkpointing"]))
    assert estimate["total_s"] == pytest.approx(expected)
    assert cached["trainable_params"] < full[0]["trainable_params"]


@pytest.mark.slow
def test_recipe_search_varies_one_parameter_at_a_time_and_scores_validation_only(tmp_path):
    out = tmp_path / "search.json"
    result = run_bench("recipe_search.py", "--dataset", "easy_vqa", "--max-images", "6", "--seeds", "0", "1",
                       "--set", "train.max_epochs=1", "--set", "resnet_bert.tiny.dropout=0.1",
                       "--work", str(tmp_path / "work"), "--out", str(out))
    search = json.loads(out.read_text())
    # easy-VQA's recipe: 12 epochs, dropout 0.1; so dropout=0.1 is the base, not a setting of its own
    assert search["base"] == {"train.max_epochs": 12, "resnet_bert.tiny.dropout": 0.1}
    rows = {row["setting"]: row for row in search["rows"]}
    assert set(rows) == {"base", "train.max_epochs=1"}
    assert [r["best_epoch"] for r in rows["train.max_epochs=1"]["runs"]] in ([0, 0], [0, 1], [1, 0], [1, 1])
    for row in rows.values():
        accuracies = [r["best_val_accuracy"] for r in row["runs"]]
        assert [r["seed"] for r in row["runs"]] == [0, 1] and all(0 <= a <= 1 for a in accuracies)
        assert row["mean_val_accuracy"] == pytest.approx(sum(accuracies) / 2)
    assert "test" not in json.dumps(search["rows"])
    assert "| base |" in result.stdout and "the test split was not scored" in result.stdout
