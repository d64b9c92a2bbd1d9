"""The benchmarks: their timing rules, their training step, their strategies as parameter
overrides, their features the features stage's, and the GPU check's whole code path run on the CPU
at tiny sizes."""

import dataclasses
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vqalab.benchmark import loopstep, timing
from vqalab.benchmark.runs import RunInputs
from vqalab.benchmark.strategies import load_strategies, load_strategy, strategy_overrides
from vqalab.data.features import CachedFeatures
from vqalab.models.fusion import FusionConfig
from vqalab.models.registry import FAMILIES, build_model, get_family
from vqalab.params import RESOLVED_ROOT
from vqalab.resolve import load_params

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = load_strategies(ROOT / "bench/strategies")
FUSION_FAMILIES = sorted(name for name in FAMILIES if issubclass(get_family(name).config_class, FusionConfig))
# PYTHON: gpu_check.sh runs this interpreter (the project's), not whatever python3 is on PATH.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHON": sys.executable,
       "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


@functools.cache
def script(path: str):
    """The script at ``path`` (from the project root) as a module, as ``python path`` runs it but for ``main``."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def test_environment_names_the_libraries_a_run_records_and_the_gpu_ones():
    from vqalab.runtime import library_versions

    record = timing.environment(torch.device("cpu"))
    assert record["torch"] and record["transformers"] and record["peft"] and record["gpu"] is None
    assert set(library_versions()) | {"accelerate", "flash-attn"} <= set(record)


def test_fast_math_is_restored_after_the_reference_steps():
    before = torch.backends.cudnn.benchmark
    with timing.fast_math(True):
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.benchmark == before


def test_the_benchmark_step_trains_exactly_as_the_loop_does(tmp_path):
    """LoopStep drives the loop's own step as fit does: from the same build, one epoch of fit and
    three benchmark steps give the same weights."""
    from vqalab.training.loop import fit

    paper_gpu = script("bench/paper_gpu.py")
    sources = paper_gpu.save_sources(tmp_path, paper_gpu.SIZES["tiny"])
    params = load_params(ROOT / "params.yaml", {
        "dataset": "vqa_rad", "model": "resnet_bert", "profile": "tiny",
        "resnet_bert": {"tiny": {"image_size": 32, "image_encoder": "resnet_small", "image_weights": None,
                                 "text_encoder": sources["bert"], "image_training": "full", "text_training": "full",
                                 "question_prior": False, "dropout": 0.2, "hidden_size": 16, "batch_size": 4}},
        "train": {"max_epochs": 1, "device": "cpu", "precision": "fp32"}})
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


def test_the_strategies_are_the_documented_files():
    assert set(STRATEGIES) == {"full_fp32", "full_bf16", "partial", "lora_text", "frozen_cached", "paper"}
    assert STRATEGIES["paper"].family == {} and STRATEGIES["paper"].train == {}


@pytest.mark.parametrize("profile", ["tiny", "paper"])
@pytest.mark.parametrize("dataset", ["easy_vqa", "vqa_rad"])
@pytest.mark.parametrize("family", FUSION_FAMILIES)
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_file_is_a_valid_override_of_every_fusion_family(strategy, family, dataset, profile):
    """A strategy goes through load_params with the data set's recipe, over the benchmark's own
    values, and wins over them; with question_prior on by default (VQA-RAD), a strategy that
    fine-tunes the text encoder must turn it off."""
    chosen = STRATEGIES[strategy]
    params = load_params(ROOT / "params.yaml", strategy_overrides(
        chosen, model=family, profile=profile, base={"dataset": dataset, "train": {"device": "cpu", "max_epochs": 2}}))
    assert (params.model, params.profile, params.dataset) == (family, profile, dataset)
    assert {name: params.family[name] for name in chosen.family} == chosen.family
    assert {name: getattr(params.train, name) for name in chosen.train} == chosen.train
    if "max_epochs" not in chosen.train:
        assert params.train.max_epochs == 2
    if params.family["text_training"] != "frozen":
        assert not params.family["question_prior"]


def test_a_strategy_for_another_family_fails_naming_the_parameter():
    with pytest.raises(ValueError, match="overrides.vilt.paper.image_training"):
        load_params(ROOT / "params.yaml", strategy_overrides(STRATEGIES["full_fp32"], model="vilt", profile="paper"))


def test_a_malformed_strategy_file_is_refused(tmp_path):
    (tmp_path / "typo.yaml").write_text("familly: {image_training: full}\n")
    with pytest.raises(ValueError, match="typo.yaml: a strategy is a mapping of family and train"):
        load_strategy(tmp_path / "typo.yaml")


def test_overrides_win_over_the_recipe_and_a_typo_fails():
    assert load_params(ROOT / "params.yaml", {"dataset": "easy_vqa"}).family["image_size"] == 64  # the recipe's
    assert load_params(ROOT / "params.yaml", {"dataset": "easy_vqa", "resnet_bert": {"tiny": {"image_size": 96}}}
                       ).family["image_size"] == 96
    with pytest.raises(ValueError, match="overrides.train.batchsize"):
        load_params(ROOT / "params.yaml", {"train": {"batchsize": 8}})


def test_the_benchmark_features_are_the_features_stages_bit_for_bit(tmp_path):
    """training_cost's frozen_cached run computes its features as the features stage does (its
    function, its fixed batch): the same tensors, to the bit, as the stage writes for the same
    parameters. 40 images per split make two batches of the stage's 64."""
    training_cost = script("bench/training_cost.py")
    overrides = training_cost.run_overrides(
        "frozen_cached", dataset="easy_vqa", family="resnet_bert", train={"device": "cpu"},
        data=training_cost.data_overrides("easy_vqa", max_images=40, source=None))
    params = load_params(ROOT / "params.yaml", overrides)
    inputs = RunInputs(tmp_path / "work")
    benchmark = inputs.features(params, device=torch.device("cpu"))
    assert benchmark.image is not None and benchmark.question is not None and len(benchmark.image) > 64

    resolved = tmp_path / "resolved.json"
    resolved.write_text(json.dumps({RESOLVED_ROOT: params.values}))
    script("stages/features.py").main(["--params", str(resolved), "--data", str(inputs.processed(params)),
                                       "--out", str(tmp_path / "features")])
    stage = CachedFeatures.load(tmp_path / "features")
    assert stage.fingerprints == benchmark.fingerprints and stage.question_row == benchmark.question_row
    assert torch.equal(stage.image, benchmark.image) and torch.equal(stage.question, benchmark.question)


def test_training_cost_needs_a_vqa_rad_source_to_benchmark_vqa_rad(capsys):
    with pytest.raises(SystemExit):
        script("bench/training_cost.py").parse_args(["--datasets", "vqa_rad"])
    assert "--vqa-rad-source is required when vqa_rad is benchmarked" in capsys.readouterr().err


def test_recipe_search_refuses_to_vary_how_a_run_is_started():
    parse_set = script("bench/recipe_search.py").parse_set
    assert parse_set("train.weight_decay=0.01,0.05") == (("train", "weight_decay"), [0.01, 0.05])
    for key in ("seed", "train.compile"):
        with pytest.raises(Exception, match="how a run is started"):
            parse_set(f"{key}=0,1")


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


def run_bench(script_name: str, *args: str) -> subprocess.CompletedProcess:
    """Run bench/<script_name> with ``args`` as a user would; it must succeed."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script_name), *args], capture_output=True,
                            text=True, env=ENV, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_training_cost_benchmark_compares_strategies_against_full_fine_tuning(tmp_path):
    out = tmp_path / "cost.json"
    result = run_bench("training_cost.py", "--datasets", "easy_vqa", "--families", "resnet_bert",
                       "--strategies", "full_fp32", "frozen_cached", "--max-images", "6", "--max-epochs", "1",
                       "--work", str(tmp_path / "work"), "--out", str(out))
    assert "| easy_vqa | resnet_bert | frozen_cached |" in result.stdout
    saved = json.loads(out.read_text())
    assert saved["strategies"]["frozen_cached"] == STRATEGIES["frozen_cached"].values()
    rows = {r["strategy"]: r for r in saved["rows"]}
    assert rows["full_fp32"]["speedup_train"] == 1.0 and rows["full_fp32"]["test_accuracy_delta_points"] == 0.0
    cached, full = rows["frozen_cached"], rows["full_fp32"]
    assert cached["features_s"] > 0 and full["features_s"] == 0
    assert cached["epochs"] <= 30 and full["epochs"] == 1  # the strategy's own epochs win over --max-epochs
    assert cached["trainable_params"] < full["trainable_params"]
    assert cached["speedup_train"] == pytest.approx(full["train_s"] / cached["train_s"])
    assert all(0 <= r["test_accuracy"] <= 1 and r["peak_rss_mb"] > 0 and r["train_samples_per_s"] > 0
               for r in rows.values())


@pytest.mark.slow
def test_gpu_check_runs_every_benchmark_on_the_cpu_and_prints_one_table(tmp_path):
    """bench/gpu_check.sh --device cpu: the GPU check's code path at tiny sizes (under a minute on
    2 free cores)."""
    result = subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh"), "--device", "cpu"], capture_output=True,
                            text=True, env={**ENV, "OUT": str(tmp_path)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| figure | value | unit | reference | ratio | target | met |" in result.stdout
    assert "study training time (resnet_bert" in result.stdout
    paper = json.loads((tmp_path / "paper_gpu.json").read_text())
    rows = paper["rows"]
    assert paper["environment"]["torch"] and paper["repeats"] >= 3
    references = {(r["batch_size"], r["precision"]) for r in rows if r["kind"] == "reference"}
    full = [r for r in rows if r["family"] == "resnet_bert" and r["strategy"] in ("full_fp32", "full_bf16")]
    assert {(r["batch_size"], r["precision"]) for r in full} == references == {(4, "fp32"), (4, "bf16")}
    for r in full:
        assert r["ratio_to_reference"] == pytest.approx(r["samples_per_s"] / r["reference_samples_per_s"])
        assert len(r["rounds"]) == paper["repeats"]
        assert r["samples_per_s_min"] <= r["samples_per_s"] <= r["samples_per_s_max"]
    assert all(r["ratio_to_reference"] is None for r in rows if r not in full)
    assert {r["family"] for r in rows} == {"resnet_bert", "reference", "pubmedclip", "vilt"}
    qwen = json.loads((tmp_path / "qwen2vl_gpu.json").read_text())
    assert {r["mode"] for r in qwen["rows"]} == {"train", "generate"}
    assert all(r["samples_per_s"] > 0 for r in qwen["rows"])
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    estimate = summary["study_estimate"]
    assert set(estimate["per_family_s"]) == {"resnet_bert", "pubmedclip", "vilt", "qwen2vl"}
    assert not estimate["missing"]

    def speed(family: str, strategy: str) -> float:
        return next(r["samples_per_s"] for r in rows if r["family"] == family and r["strategy"] == strategy)

    qwen_train = next(r["samples_per_s"] for r in qwen["rows"]
                      if r["mode"] == "train" and r["gradient_checkpointing"] == qwen["paper_gradient_checkpointing"])
    # On the CPU the paper profile's precision (auto) is fp32: resnet_bert's study figure is full_fp32's.
    expected = 3064 * (20 / speed("resnet_bert", "full_fp32") + 20 / speed("pubmedclip", "paper")
                       + 20 / speed("vilt", "paper") + 5 / qwen_train)
    assert estimate["total_s"] == pytest.approx(expected)
    cached = next(r for r in rows if r["strategy"] == "frozen_cached")
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
        assert row["mean_val_accuracy"] == pytest.approx(statistics.fmean(accuracies))
        assert row["sd_val_accuracy"] == pytest.approx(statistics.stdev(accuracies))
    assert "test" not in json.dumps(search["rows"])
    assert "| base |" in result.stdout and "the test split was not scored" in result.stdout
