"""The benchmarks: a CPU benchmark is a sweep of DVC experiments read back from `dvc exp show` (its
plan checked before anything is queued, its runs told apart and compared with their reference),
results are written with when and where they were measured, the GPU benchmarks compose their
settings from conf/ and time the loop's own step, and the GPU check's whole code path runs on the CPU."""

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
import yaml
import torch
from conftest import init_project, run

from vqalab.benchmark import common, experiments, loopstep, timing
from vqalab.benchmark.experiments import Experiment
from vqalab.params import composed

ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture
def at_root(monkeypatch):
    """The benchmarks run from the project root (conf/ is read from there)."""
    monkeypatch.chdir(ROOT)


def experiment(name: str, *overrides: str, state: str = "success") -> Experiment:
    """An experiment as `dvc exp show` would show one made with ``overrides`` (no DVC run)."""
    return Experiment(name=name, state=state, run={"rev": f"rev-{name}", "name": name, "data": {"timestamp": ""}},
                      values=composed(ROOT / "conf", list(overrides)))


# How a GPU step is timed.

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


# Settings composed from conf/, results written with when and where.

def test_settings_compose_from_conf_and_a_value_reads_back_as_written(at_root):
    values = {"model.text_encoder": "/tmp/a folder/bert:x", "model.image_weights": None, "model.question_prior": True,
              "model.image_widths": [8, 16, 32, 64], "model.lr": 5e-05}
    params = common.composed_params(["dataset=vqa_rad", *common.overrides(values)])
    assert {key: params.values["model"][key.split(".")[1]] for key in values} == values
    with pytest.raises(ValueError, match=r"model.lr = 'fast' should be of type float"):
        common.composed_params(["model.lr=fast"])


def test_settings_outside_the_project_root_name_where_to_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="run the benchmark from the project root"):
        common.composed_params([])


def test_results_say_what_made_them_when_and_on_what_processor(tmp_path):
    from vqalab.runtime import processor_name

    common.write_results(tmp_path / "cost.json", {"rows": [1]}, table="| a |\n|---|")
    saved = json.loads((tmp_path / "cost.json").read_text())
    measured = saved["measured_on"]
    assert saved["rows"] == [1] and saved["command"].startswith("python ")
    assert measured["processor"] == processor_name() and measured["date"].endswith("UTC")
    assert len(measured["load_average_1_5_15_min"]) == 3 and measured["torch"] and measured["dvc"]
    header, _, table = (tmp_path / "cost.md").read_text().partition("\n\n")
    assert header.startswith(f"Written {measured['date']} on {processor_name()}") and table == "| a |\n|---|\n"


# A CPU benchmark: a sweep of DVC experiments.

def test_a_sweep_is_planned_as_dvc_expands_and_names_it(at_root):
    overrides = experiments.with_defaults(["train.max_epochs=2", "model=resnet_bert,pubmedclip"],
                                          script("bench/training_cost.py").DEFAULTS)
    assert overrides[:2] == ["strategy=full,partial,lora,frozen", "download.max_images_per_split=100"]
    plan = experiments.planned("cost-x", overrides)
    assert list(plan) == [f"cost-x-{i}" for i in range(1, 9)]
    picked = [(v["strategy"], v["model"]["name"], v["train"]["max_epochs"], v["download"]["max_images_per_split"])
              for v in plan.values()]
    assert picked[:3] == [("full", "resnet_bert", 2, 100), ("full", "pubmedclip", 2, 100),
                          ("partial", "resnet_bert", 2, 100)]
    assert plan["cost-x-7"]["model"]["image_training"] == "frozen"  # frozen's values, as DVC composes them
    assert list(experiments.planned("one", ["strategy=lora"])) == ["one"]  # no sweep: DVC keeps the name


@pytest.mark.parametrize(("overrides", "message"), [
    (["model=vilt", "strategy=full,lora"], r"cost-x-1 \(model=vilt strategy=full\): .*strategy=full sets which encoders of a fusion family"),
    (["strategy=full,partial", "train.max_epoch=2"], r"cost-x-1 .*Could not override 'train.max_epoch'"),
    (["model.lr=0.002,2e-3"], r"cost-x-2 \(model.lr=0.002\) composes the same parameters as cost-x-1"),
])
def test_a_wrong_sweep_fails_before_anything_is_queued_naming_the_experiment(overrides, message, at_root):
    with pytest.raises(SystemExit, match=message):
        experiments.planned("cost-x", overrides)


def test_training_cost_wants_its_reference_in_the_sweep(at_root):
    training_cost = script("bench/training_cost.py")
    plan = experiments.planned("cost-x", ["strategy=partial,lora"])
    with pytest.raises(SystemExit, match="no experiment of the sweep has strategy=full"):
        training_cost.require_reference(plan, training_cost.parse_reference(["strategy=full"]))
    with pytest.raises(SystemExit, match="--reference wants KEY=VALUE"):
        training_cost.parse_reference(["strategy"])


def test_a_recipe_search_refuses_runs_that_differ_only_in_how_they_are_started(at_root):
    check = script("bench/recipe_search.py").require_settings_apart
    check(experiments.planned("recipe-x", ["seed=0,1", "model.lr=0.001,0.002"]))
    with pytest.raises(SystemExit, match=r"recipe-x-2 differs from recipe-x-1 only in how a run is started"):
        check(experiments.planned("recipe-x", ["run.compile=false,true"]))


def test_each_run_is_compared_with_the_reference_of_its_other_settings(at_root):
    training_cost = script("bench/training_cost.py")
    runs = [experiment(name, *overrides) for name, overrides in [
        ("c-1", ["strategy=full"]), ("c-2", ["strategy=lora"]),
        ("c-3", ["strategy=full", "train.precision=bf16"]), ("c-4", ["strategy=lora", "train.precision=bf16"])]]
    settings = {run.name: experiments.setting_of(run) for run in runs}
    assert settings["c-4"] == {"dataset": "easy_vqa", "model": "resnet_bert", "profile": "tiny", "strategy": "lora",
                               "train.precision": "bf16"}
    varied, shared = experiments.split_settings(runs, list(settings.values()))
    assert varied == ["strategy", "train.precision"]
    assert shared == {"dataset": "easy_vqa", "model": "resnet_bert", "profile": "tiny"}
    assert experiments.label(experiments.picked(runs[3].values, varied)) == "strategy=lora, train.precision=bf16"

    def reference_of(run, **reference):
        found = training_cost.reference_of(run, runs, settings, reference)
        return found.name if found else None

    assert [reference_of(run, strategy="full") for run in runs] == ["c-1", "c-1", "c-3", "c-3"]
    # Against full at the profile's precision: bf16 runs too (bf16 against fp32 on the CPU).
    at_auto_precision = {"strategy": "full", "train.precision": "auto"}
    assert [reference_of(run, **at_auto_precision) for run in runs] == ["c-1"] * 4
    assert reference_of(runs[1], strategy="frozen") is None


def test_time_to_target_counts_from_the_start_of_training():
    time_to_target = script("bench/training_cost.py").time_to_target
    val, elapsed = {1: 0.5, 2: 0.8, 3: 0.9}, {1: 10.0, 2: 20.0, 3: 30.0}
    assert time_to_target(val, elapsed, 0.8) == 20.0
    assert time_to_target(val, elapsed, 0.95) is None
    assert time_to_target({0: 0.85, **val}, elapsed, 0.8) == 0.0  # the untrained model, validated as a baseline


def test_a_sweep_is_read_back_in_its_order_and_unfinished_runs_are_named(monkeypatch, capsys):
    def shown(name: str, state: str) -> dict:
        return {"name": name, "executor": {"state": state}, "revs": [{"rev": f"rev-{name}", "name": name, "data": {
            "timestamp": "", "params": {"params.yaml": {"data": composed(ROOT / "conf", [])}}}}]}

    listed = [shown("s-10", "success"), shown("s-2", "failed"), shown("other", "success"), shown("s-1", "success"),
              shown("s-11x", "success")]
    exp_show = [{"rev": "workspace", "experiments": None}, {"rev": "abc", "experiments": listed}]
    monkeypatch.setattr(experiments, "read_exp_show", lambda json_path, all_commits, revs: exp_show)
    read = experiments.sweep_experiments("s")
    assert [e.name for e in read] == ["s-1", "s-2", "s-10"] and read[0].rev == "rev-s-1"
    assert [e.name for e in experiments.finished(read)] == ["s-1", "s-10"]
    assert "s-2 is failed, left out of the table: `dvc queue logs s-2` shows why" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no experiment named t or t-N on HEAD"):
        experiments.sweep_experiments("t")


# The GPU benchmarks: settings from conf/, the loop's own step.

def test_a_gpu_variant_composes_the_study_with_its_sources_replaced(at_root):
    paper_gpu = script("bench/paper_gpu.py")
    sources = {"bert": "/tmp/s/bert", "clip": "/tmp/s/clip", "vilt": "/tmp/s/vilt"}
    (variant,) = paper_gpu.parse_variants(["model=resnet_bert strategy=full train.precision=bf16"])
    params = common.composed_params(paper_gpu.variant_overrides(
        variant, sources=sources, sizes=paper_gpu.SIZES["tiny"], batch_size=4, device=torch.device("cpu")))
    model = params.values["model"]
    assert (params.dataset, params.profile, params.strategy, params.train.precision) == ("vqa_rad", "paper", "full",
                                                                                          "bf16")
    assert (model["text_encoder"], model["image_weights"], model["image_encoder"], model["batch_size"]) == (
        "/tmp/s/bert", None, "resnet18", 4)
    assert params.train.device == "cpu" and params.train.batch_size == 4
    with pytest.raises(SystemExit, match="--variants: 'strategy=fast' does not compose"):
        paper_gpu.parse_variants(["strategy=fast"])
    with pytest.raises(SystemExit, match="chooses qwen2vl; this benchmark times the classifier families"):
        paper_gpu.variant_overrides(["model=qwen2vl"], sources=sources, sizes=paper_gpu.SIZES["tiny"], batch_size=4,
                                    device=torch.device("cpu"))
    planned = dict(sources=sources, sizes=paper_gpu.SIZES["tiny"], device=torch.device("cpu"))
    assert list(paper_gpu.planned_variants([["strategy=full"], ["strategy=frozen"]], [4, 8], **planned)) == [
        "resnet_bert/full/b4/fp32", "resnet_bert/full/b8/fp32", "resnet_bert/frozen/b4/fp32", "resnet_bert/frozen/b8/fp32"]
    with pytest.raises(SystemExit, match="'strategy=full model.lr=0.01' and 'strategy=full' both time "
                                         "resnet_bert/full/b4/fp32"):
        paper_gpu.planned_variants([["strategy=full"], ["strategy=full", "model.lr=0.01"]], [4], **planned)


def test_the_benchmark_step_trains_exactly_as_the_loop_does(tmp_path, at_root):
    """LoopStep drives the loop's own step as fit does: from the same build, one epoch of fit and
    three benchmark steps give the same weights."""
    from vqalab.models.registry import build_model
    from vqalab.training.loop import fit

    paper_gpu = script("bench/paper_gpu.py")
    sources = paper_gpu.save_sources(tmp_path, paper_gpu.SIZES["tiny"])
    params = common.composed_params(["dataset=vqa_rad", "model=resnet_bert", "strategy=full", *common.overrides({
        "model.image_size": 32, "model.image_encoder": "resnet_small", "model.image_weights": None,
        "model.text_encoder": sources["bert"], "model.dropout": 0.2, "model.hidden_size": 16, "model.batch_size": 4,
        "train.max_epochs": 1, "train.device": "cpu", "train.precision": "fp32"})])
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


# End to end, on a git + DVC copy of the project.

@pytest.fixture(scope="module")
def bench_project(tmp_path_factory):
    """A copy of the project (one commit) where the benchmarks queue their experiments."""
    root = tmp_path_factory.mktemp("bench_project")
    return root, init_project(root)


def run_bench(project, script_name: str, *args: str) -> subprocess.CompletedProcess:
    """Run bench/<script_name> with ``args`` in ``project`` as a user would; it must succeed."""
    root, env = project
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script_name), *args], cwd=root, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_training_cost_runs_each_strategy_as_an_experiment_and_compares_it_with_full(bench_project, tmp_path):
    out = tmp_path / "cost.json"
    result = run_bench(bench_project, "training_cost.py", "--name", "cost", "-S", "strategy=full,frozen",
                       "-S", "download.max_images_per_split=6", "-S", "train.max_epochs=1", "--out", str(out))
    assert "$ dvc exp run --queue --name cost -S strategy=full,frozen" in result.stderr
    saved = json.loads(out.read_text())
    rows = {row["setting"]: row for row in saved["rows"]}
    assert list(rows) == ["strategy=full", "strategy=frozen"]
    assert saved["shared"] == {"dataset": "easy_vqa", "model": "resnet_bert", "profile": "tiny",
                               "download.max_images_per_split": 6, "train.max_epochs": 1}
    assert rows["strategy=frozen"]["setting_values"] == {**saved["shared"], "strategy": "frozen"}
    full, frozen = rows["strategy=full"], rows["strategy=frozen"]
    assert (full["experiment"], frozen["experiment"], frozen["reference"]) == ("cost-1", "cost-2", "cost-1")
    assert full["train_speedup"] == 1.0 and full["test_accuracy_delta_points"] == 0.0
    assert frozen["train_speedup"] == pytest.approx(full["train_time_s"] / frozen["train_time_s"])
    assert frozen["trainable_params"] < full["trainable_params"] and full["epochs"] == frozen["epochs"] == 1
    assert all(0 <= r["test_accuracy"] <= 1 and r["peak_rss_mb"] > 0 and r["train_samples_per_s"] > 0
               and r["samples_per_s_last_over_first"] == 1.0 for r in rows.values())
    assert full["time_to_target_s"] is not None and full["target_val_accuracy"] == full["best_val_accuracy"] - 0.01
    assert "| easy_vqa | resnet_bert | strategy=frozen |" in result.stdout
    assert (tmp_path / "cost.md").read_text().endswith(result.stdout)
    # The table again from the experiments, nothing queued.
    again = run_bench(bench_project, "training_cost.py", "--table", "cost", "--out", str(tmp_path / "again.json"))
    assert again.stdout == result.stdout and "--queue" not in again.stderr


@pytest.mark.slow
def test_recipe_search_trains_each_setting_and_seed_and_never_scores_the_test_split(bench_project, tmp_path):
    out = tmp_path / "search.json"
    result = run_bench(bench_project, "recipe_search.py", "--name", "search", "-S", "model.lr=0.001,0.004",
                       "-S", "seed=0,1", "-S", "download.max_images_per_split=6", "-S", "train.max_epochs=1",
                       "--out", str(out))
    rows = {row["setting"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"model.lr=0.001", "model.lr=0.004"}
    for row in rows.values():
        accuracies = [r["val_accuracy"] for r in row["runs"]]
        assert row["seeds"] == [r["seed"] for r in row["runs"]] == [0, 1] and all(0 <= a <= 1 for a in accuracies)
        assert row["mean_val_accuracy"] == pytest.approx(statistics.fmean(accuracies))
        assert row["sd_val_accuracy"] == pytest.approx(statistics.stdev(accuracies))
        assert all(r["best_epoch"] in (0, 1) and r["train_time_s"] > 0 for r in row["runs"])
    assert "| model.lr=" in result.stdout and "The test split was not scored." in result.stderr
    # Its experiments ran no evaluate stage: none of them holds test figures.
    root, env = bench_project
    for run_ in (r for row in rows.values() for r in row["runs"]):
        stages = yaml.safe_load(run(["git", "show", f"{run_['rev']}:dvc.lock"], root, env))["stages"]
        assert "train" in stages and "evaluate" not in stages


@pytest.mark.slow
def test_gpu_check_runs_every_benchmark_on_the_cpu_and_prints_one_table(tmp_path):
    """bench/gpu_check.sh --device cpu: the GPU check's code path at tiny sizes (about two minutes
    on 2 free cores)."""
    result = subprocess.run(["bash", str(ROOT / "bench/gpu_check.sh"), "--device", "cpu"], capture_output=True,
                            text=True, env={**ENV, "OUT": str(tmp_path)}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| figure | value | unit | reference | ratio | target | met |" in result.stdout
    assert "study training time (resnet_bert" in result.stdout
    paper = json.loads((tmp_path / "paper_gpu.json").read_text())
    rows = paper["rows"]
    assert paper["environment"]["torch"] and paper["repeats"] >= 3 and paper["measured_on"]["processor"]
    references = {(r["batch_size"], r["precision"]) for r in rows if r["kind"] == "reference"}
    full = [r for r in rows if r["family"] == "resnet_bert" and r["strategy"] == "full"]
    assert {(r["batch_size"], r["precision"]) for r in full} == references == {(4, "fp32"), (4, "bf16")}
    for r in full:
        assert r["ratio_to_reference"] == pytest.approx(r["samples_per_s"] / r["reference_samples_per_s"])
        assert len(r["rounds"]) == paper["repeats"]
        assert r["samples_per_s_min"] <= r["samples_per_s"] <= r["samples_per_s_max"]
    assert all(r["ratio_to_reference"] is None for r in rows if r not in full)
    assert {(r["family"], r["strategy"]) for r in rows} == {("resnet_bert", "full"), ("resnet_bert", "frozen"),
                                                            ("reference", "plain pytorch"), ("pubmedclip", "default"),
                                                            ("vilt", "default")}
    qwen = json.loads((tmp_path / "qwen2vl_gpu.json").read_text())
    assert {r["mode"] for r in qwen["rows"]} == {"train", "generate"}
    assert all(r["samples_per_s"] > 0 for r in qwen["rows"])
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    estimate = summary["study_estimate"]
    assert set(estimate["per_family_s"]) == {"resnet_bert", "pubmedclip", "vilt", "qwen2vl"}
    assert not estimate["missing"]
    assert (tmp_path / "gpu_check.md").read_text().startswith("Written ")

    def speed(family: str, strategy: str, precision: str = "fp32") -> float:
        return next(r["samples_per_s"] for r in rows
                    if r["family"] == family and r["strategy"] == strategy and r["precision"] == precision)

    qwen_train = next(r["samples_per_s"] for r in qwen["rows"]
                      if r["mode"] == "train" and r["gradient_checkpointing"] == qwen["paper_gradient_checkpointing"])
    # On the CPU the paper profile's precision (auto) is fp32: resnet_bert's study figure is full fp32's.
    expected = 3064 * (20 / speed("resnet_bert", "full") + 20 / speed("pubmedclip", "default")
                       + 20 / speed("vilt", "default") + 5 / qwen_train)
    assert estimate["total_s"] == pytest.approx(expected)
    cached = next(r for r in rows if r["strategy"] == "frozen")
    assert cached["trainable_params"] < full[0]["trainable_params"]
