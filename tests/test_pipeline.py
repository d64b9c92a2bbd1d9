"""End to end: the real dvc.yaml and stages on a small slice of easy-VQA, in a temporary repository."""

import json
import os
import signal
import subprocess
import time

import pytest
import yaml
from conftest import BIN, DVC, LOCAL_CONFIG, ROOT, run, set_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(reproduced_project):
    return reproduced_project


def test_repro_writes_every_output(project):
    root, env = project
    quality = json.loads((root / "metrics/eval.json").read_text())
    # What a reader compares: quality figures only; cost, names and counts elsewhere.
    expected = {"accuracy", "accuracy_ci95", "accuracy_closed", "accuracy_open", "sbert_similarity", "answer_coverage",
                "blind_accuracy", "blind_accuracy_closed", "blind_accuracy_open", "image_gain", "image_gain_ci95",
                "shuffled_image_accuracy", "image_sensitivity"}
    assert expected <= set(quality) <= expected | {"wups_09", "wups_00"}, set(quality)
    assert all(isinstance(v, (int, float)) or len(v) == 2 for v in quality.values())
    assert quality["accuracy_ci95"][0] <= quality["accuracy"] <= quality["accuracy_ci95"][1]
    assert quality["image_gain"] == pytest.approx(quality["accuracy"] - quality["blind_accuracy"])
    assert 0.0 <= quality["accuracy"] <= 1.0 and 0.0 < quality["sbert_similarity"] <= 1.0
    assert 0.0 <= quality["image_sensitivity"] <= 1.0
    cost = json.loads((root / "metrics/cost.json").read_text())
    assert {"train_time_s", "train_samples_per_s", "test_ms_per_question", "peak_rss_mb", "trainable_params",
            "total_params"} <= set(cost)
    assert 0 < cost["trainable_params"] < cost["total_params"]
    details = json.loads((root / "metrics/eval_details.json").read_text())
    assert (details["dataset"], details["model"], details["seed"]) == ("easy_vqa", "resnet_bert", 0)
    assert details["sbert_model"] == "packaged:all-MiniLM-L6-v2"
    assert ("wups_09" in quality and 0 <= quality["wups_00"] <= 1) or "wups_unavailable" in details
    by_frequency = json.loads((root / "metrics/plots/accuracy_by_frequency.json").read_text())
    assert sum(row["questions"] for row in by_frequency if "blind" not in row["bucket"]) == details["n"]
    by_type = json.loads((root / "metrics/plots/accuracy_by_answer_type.json").read_text())
    assert {row["answer_type"] for row in by_type} >= {"all", "all, blind baseline"}
    summary = json.loads((root / "metrics/train/metrics.json").read_text())  # DVCLive: the kept epoch's
    checkpoint = json.loads((root / "models/resnet_bert/checkpoint.json").read_text())
    # The model folder holds what training made, names its frozen encoders, and has a model card.
    folder_mb = sum(f.stat().st_size for f in (root / "models/resnet_bert").rglob("*") if f.is_file()) / 2**20
    assert folder_mb < 5 and cost["checkpoint_mb"] == pytest.approx(folder_mb, abs=0.01)
    assert {p["param"] for p in checkpoint["pretrained"].values()} == {"model.text_encoder", "model.image_weights"}
    assert not {"train_time_s", "train_samples_per_s", "peak_rss_mb"} & set(checkpoint)
    assert (root / "models/resnet_bert/README.md").read_text().startswith("---\nlibrary_name: vqalab\n")
    assert summary["step"] == checkpoint["best_epoch"] and summary["val_accuracy"] == checkpoint["best_val_accuracy"]

    stats = json.loads((root / "metrics/data_stats.json").read_text())
    assert stats["train"]["images"] + stats["val"]["images"] == 30 and stats["test"]["images"] == 30
    assert stats["images_shared_train_val"] == 0
    predictions = [json.loads(line) for line in (root / "metrics/predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == stats["test"]["questions"] == details["n"]
    assert set(predictions[0]) == {"id", "question", "gold", "prediction", "score", "answer_type", "correct",
                                   "blind_prediction", "shuffled_image_prediction"}
    assert sum(p["correct"] for p in predictions) == round(quality["accuracy"] * details["n"])
    assert sum(p["blind_prediction"] == p["gold"] for p in predictions) == round(quality["blind_accuracy"] * details["n"])
    gallery = (root / "metrics/gallery.html").read_text()
    assert gallery.count('<tr class="row') == len(predictions)  # under report.gallery_max_rows: every question
    # The gallery is cached by DVC, not committed to git.
    assert "/gallery.html" in (root / "metrics/.gitignore").read_text().splitlines()

    report = (root / "metrics/report.md").read_text()
    assert "| model | test accuracy [95% CI] | blind baseline | image gain [95% CI] | SBERT similarity | training time |" in report
    assert f"| resnet_bert | {100 * quality['accuracy']:.2f}% [" in report
    assert "The blind baseline answers from the question alone" in report
    assert "With the test images shuffled among the questions" in report
    for plot in ("training_curves", "accuracy_by_frequency", "accuracy_by_answer_type"):
        assert (root / f"plots/{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Accuracy by answer frequency in train" in report
    assert checkpoint["epochs_run"] <= 2
    assert "Data and pipelines are up to date" in run([DVC, "status"], root, env)


def restore_baseline(root, env, *, outputs: bool = True) -> None:
    """Back to the fixture's commit without running a stage: git's files (conf/, params.yaml,
    dvc.lock, the metrics), then DVC's outputs from its cache (``outputs``). Every file is written
    again: a file changed in the same second as the last checkout, at the same size (a 64 that became
    32), looks unchanged to git's stat check, and `git checkout HEAD -- .` would keep it."""
    run(["git", "reset", "-q", "HEAD"], root, env)
    run(["git", "checkout-index", "--all", "--force"], root, env)
    if outputs:
        run([DVC, "checkout", "--force"], root, env)


def stages_run(root, env) -> set[str]:
    """The stages `dvc repro` runs (a stage whose inputs are unchanged is skipped)."""
    out = run([DVC, "repro"], root, env)
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


def stages_whose_params_changed(root, env) -> set[str]:
    """The stages DVC reruns because a parameter they list changed (the stages after them rerun
    only if their inputs change)."""
    status = json.loads(run([DVC, "status", "--json"], root, env))
    return {stage for stage, changes in status.items()
            if any("params.yaml" in change.get("changed deps", {}) for change in changes if isinstance(change, dict))}


def test_param_changes_rerun_exactly_the_stages_that_read_them(project):
    root, env = project
    try:
        for change, expected in [
            # The blind baseline reads the questions, not the images: a new image size keeps it.
            ({"model.image_size": 48}, {"validate", "preprocess", "features", "train"}),
            # The features stage runs at a fixed batch size: the cache and the model are kept.
            ({"evaluate.batch_size": 32}, {"validate", "evaluate"}),
            # The features stage lists the model section: it reruns (seconds), and its output is the
            # same, so what the frozen encoders make is not recomputed downstream.
            ({"model.lr": 0.001}, {"validate", "features", "train"}),
            # How a run is started is not what it makes: no stage but validate reruns.
            ({"run.resume": True, "run.launcher": "python -X dev"}, {"validate"}),
        ]:
            set_config(root, env, **change)
            assert stages_whose_params_changed(root, env) == expected, change
            restore_baseline(root, env, outputs=False)
        assert "Data and pipelines are up to date" in run([DVC, "status"], root, env)
        # And a full rerun after a change runs those stages and the ones after them, no others
        # (validate's output is always the same: it reruns nothing).
        set_config(root, env, **{"evaluate.batch_size": 32})
        assert stages_run(root, env) == {"validate", "evaluate", "report"}
    finally:
        restore_baseline(root, env)
    assert "Data and pipelines are up to date" in run([DVC, "status"], root, env)


def test_training_again_gives_the_same_model_folder(project):
    """No timings in the folder: `dvc repro -f -s train` keeps dvc.lock's hash of it."""
    root, env = project

    def model_hash(lock: str) -> str:
        (out,) = [o for o in yaml.safe_load(lock)["stages"]["train"]["outs"] if o["path"] == "models/resnet_bert"]
        return out["md5"]

    try:
        run([DVC, "repro", "-f", "-s", "train"], root, env)
        assert model_hash((root / "dvc.lock").read_text()) == model_hash(run(["git", "show", "HEAD:dvc.lock"], root, env))
    finally:
        restore_baseline(root, env)


def test_a_params_yaml_that_is_not_what_conf_composes_is_refused_by_dvc_repro(project):
    """Edited by hand, or left behind by a change to conf/: the first stage to run says so and what
    to run, and nothing runs after it."""
    root, env = project
    params, recipe = root / "params.yaml", root / "conf/recipe/easy_vqa_resnet_bert_tiny.yaml"
    try:
        for edit, key in [(lambda: params.write_text(params.read_text().replace("lr: 0.002", "lr: 0.01")), "model.lr"),
                          (lambda: recipe.write_text(recipe.read_text().replace("dropout: 0.1", "dropout: 0.2")),
                           "model.dropout")]:
            edit()
            failed = subprocess.run([DVC, "repro"], cwd=root, env=env, capture_output=True, text=True)
            output = failed.stdout + failed.stderr
            assert failed.returncode != 0 and "is not what conf/ composes for dataset=easy_vqa" in output, output[-2000:]
            assert f"  {key}: " in output and "run `vqalab compose`" in output
            assert "Running stage 'features'" not in output
            restore_baseline(root, env, outputs=False)
    finally:
        restore_baseline(root, env)


def test_a_failed_exp_run_names_the_key_and_the_next_run_works(project):
    """A choice conf/ does not have fails as DVC composes params.yaml, naming the options; a wrong
    value fails in the validate stage, before any other; `git checkout` puts params.yaml back, and
    the next run works."""
    root, env = project
    for change, message, ran in [("model=foo", "Could not find 'model/foo'", None),
                                 ("dataset=foo", "Could not find 'dataset/foo'", None),
                                 ("model.batch_size=0", "params: model.batch_size must be a positive integer, got 0",
                                  "validate")]:
        start = time.perf_counter()
        failed = subprocess.run([DVC, "exp", "run", "-S", change], cwd=root, env=env, capture_output=True, text=True)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0 and message in output, output[-2000:]
        assert "Running stage 'features'" not in output
        if ran:
            assert f"Running stage '{ran}'" in output
        print(f"\n{change}: failed in {time.perf_counter() - start:.1f} s")
        run(["git", "checkout", "HEAD", "--", "params.yaml"], root, env)  # the README's way back
    run([DVC, "exp", "run", "-S", "train.max_epochs=2"], root, env)
    assert json.loads((root / "metrics/eval.json").read_text())["accuracy"] > 0


def test_exp_run_and_metrics_diff(project):
    root, env = project
    run([DVC, "exp", "run", "-S", "train.max_epochs=1"], root, env)
    diff = json.loads(run([DVC, "metrics", "diff", "--all", "--json", "HEAD"], root, env))
    eval_diff = diff["metrics/eval.json"]
    assert {"accuracy", "sbert_similarity", "image_gain"} <= set(eval_diff) and "train_time_s" not in eval_diff
    assert set(eval_diff["accuracy"]) >= {"old", "new"}
    assert "train_time_s" in diff["metrics/cost.json"]
    checkpoint = json.loads((root / "models/resnet_bert/checkpoint.json").read_text())
    assert checkpoint["epochs_run"] == 1


def test_compare_table_reads_every_experiment(project, tmp_path):
    root, env = project  # runs after test_exp_run_and_metrics_diff: the baseline plus one experiment
    out_md, out_png = tmp_path / "compare.md", tmp_path / "compare.png"
    table = run([str(BIN / "vqalab-compare"), "--out-md", str(out_md), "--out-png", str(out_png)], root, env)
    lines = [line for line in table.splitlines() if line.startswith("| easy_vqa")]
    assert len(lines) == 2  # one row per setting: the baseline (2 epochs) and the experiment (1 epoch)
    metrics = json.loads((root / "metrics/eval.json").read_text())  # the experiment, applied to the workspace
    setting = "| easy_vqa (first 30 images per split) | resnet_bert | tiny | train.max_epochs="
    assert any(line.startswith(f"{setting}1 | 0 | {100 * metrics['accuracy']:.2f}% [") for line in lines), lines
    assert any(line.startswith(f"{setting}2 | 0 |") for line in lines), lines
    assert out_md.read_text() == table
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_params_diff_lists_each_value_a_recipe_changed_once(project):
    """params.yaml is the only parameter file: a recipe's change shows once, as the value the run uses."""
    root, env = project
    written = {path: (root / path).read_bytes() for path in ("params.yaml", "conf/recipe/easy_vqa_resnet_bert_tiny.yaml")}
    try:
        recipe = root / "conf/recipe/easy_vqa_resnet_bert_tiny.yaml"
        recipe.write_text(recipe.read_text().replace("dropout: 0.1", "dropout: 0.2"))
        run([str(BIN / "vqalab"), "compose"], root, env)
        diff = json.loads(run([DVC, "params", "diff", "--json", "HEAD"], root, env))
        assert {path: {key: (v["old"], v["new"]) for key, v in values.items()} for path, values in diff.items()} == \
            {"params.yaml": {"model.dropout": (0.1, 0.2)}}
    finally:
        for path, content in written.items():
            (root / path).write_bytes(content)


def test_plots_diff_overlays_two_experiments(project, tmp_path):
    root, env = project  # the workspace holds the experiment with train.max_epochs=1 (see above)
    out = tmp_path / "plots"
    run([DVC, "plots", "diff", "HEAD", "--targets", "metrics/plots/accuracy_by_answer_type.json", "-o", str(out)], root, env)
    page = (out / "index.html").read_text()
    assert '"rev": "HEAD"' in page and '"rev": "workspace"' in page and "blind baseline" in page


def test_a_comment_in_code_a_stage_does_not_import_reruns_nothing(project):
    """dvc.yaml's deps are each stage's import closure: another data set's loader is no dep, and the
    WUPS code is the evaluate stage's alone."""
    root, env = project
    for path, changed in (("src/vqalab/data/daquar.py", set()), ("src/vqalab/evaluation/wups.py", {"evaluate"})):
        source = root / path
        original = source.read_text()
        try:
            source.write_text(original + "# a comment\n")
            status = json.loads(run([DVC, "status", "--json"], root, env))
            assert set(status) == changed, (path, status)
        finally:
            source.write_text(original)


def test_pull_request_script_compares_with_the_base_reproduced_here(project, tmp_path):
    """The PR script in a clone: this commit (one epoch) against the one before (two), both
    reproduced on this machine; against itself, the quality figures are all there and none differs."""
    root, env = project  # the workspace holds the experiment with train.max_epochs=1 (see above)
    set_config(root, env, **{"train.max_epochs": 1})  # for good: `dvc exp run` composes params.yaml from conf/
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "one epoch"], root, env)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    run([DVC, "cache", "dir", "--local", str(root / ".dvc" / "cache")], clone, env)
    out = tmp_path / "diff.md"
    run(["bash", str(ROOT / "scripts/pr_metrics.sh"), "HEAD~1", str(out)], clone, env)
    markdown = out.read_text()
    assert markdown.startswith("### vqalab: this change against `HEAD~1`, both reproduced on the same runner")
    quality, paired, cost, params = (" ".join(section.split()) for section in markdown.split("#### ")[1:])
    assert quality.startswith("Quality") and "| metrics/eval.json | accuracy |" in quality and "train_time_s" not in quality
    assert paired.startswith("Paired") and "| baseline | pr-base |" in paired and "pr-head |" in paired
    assert cost.startswith("Cost") and "| metrics/cost.json | train_time_s |" in cost
    assert params.startswith("Parameters") and "| train.max_epochs | 2 | 1 |" in params

    run(["bash", str(ROOT / "scripts/pr_metrics.sh"), "HEAD", str(out)], clone, env)
    quality = out.read_text().split("#### ")[1]
    rows = [[cell.strip() for cell in row.strip().strip("|").split("|")]
            for row in quality.splitlines() if row.startswith("| metrics/")]
    assert {(path, metric) for path, metric, *_ in rows} >= {("metrics/eval.json", "accuracy"),
                                                             ("metrics/train/metrics.json", "val_accuracy")}, quality
    assert all(base == head for _, _, base, head, _ in rows), quality
    assert "no significant difference" in out.read_text().split("#### ")[2]


def test_killed_train_stage_is_not_taken_as_complete_and_resumes(project):
    root, env = project
    set_config(root, env, **{"train.max_epochs": 12, "train.patience": 12, "run.resume": True})
    state = root / ".training_state/resnet_bert.pt"
    # `dvc repro train`: the stages after it are other tests' business; this one is about the kill.
    process = subprocess.Popen([DVC, "repro", "train"], cwd=root, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not state.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert state.exists(), "the train stage saved no epoch state"
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # as a killed job: no chance to clean up
        process.wait()
    status = run([DVC, "status", "train"], root, env)
    assert "train:" in status and "changed" in status  # DVC does not take the half-run stage as done
    assert not (root / "models/resnet_bert/checkpoint.json").exists()
    out = subprocess.run([DVC, "repro", "train"], cwd=root, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resuming after epoch" in out.stdout + out.stderr
    checkpoint = json.loads((root / "models/resnet_bert/checkpoint.json").read_text())
    assert checkpoint["epochs_run"] == 12 and not state.exists()
    curve = (root / "metrics/train/plots/metrics/val_accuracy.tsv").read_text().splitlines()
    assert len(curve) == 1 + 12  # header + every epoch, the ones before the kill included
