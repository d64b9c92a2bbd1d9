import json

import numpy as np
import pytest

from vqalab.evaluation.stats import mean_interval, paired_difference
from vqalab.report import compare
from vqalab.report.compare import (PredictionsMissing, add_comparisons, add_intervals, add_predictions_figures,
                                  aggregate_seeds, check_predictions_match, experiment_rows, main, read_predictions,
                                  render_table)

PARAMS = {"dataset": {"name": "vqa_rad", "source": "path/to/vqa_rad", "variant": "public"},
          "model": {"name": "resnet_bert", "lr": 0.0005}, "profile": "tiny", "strategy": "default",
          "download": {"max_images_per_split": None, "on_bad_record": "error"}, "train": {"max_epochs": 20},
          "run": {"resume": False, "launcher": "python", "compile": False}}


def merged(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def run(name, timestamp, *, seed=0, params=None, cost=None, **quality):
    values = merged(PARAMS, {**(params or {}), "seed": seed})
    return {"rev": name, "name": name, "data": {
        "rev": name, "timestamp": timestamp, "params": {"params.yaml": {"data": values}},
        "metrics": {"metrics/eval.json": {"data": {"sbert_similarity": 0.7, **quality}},
                    "metrics/cost.json": {"data": {"train_time_s": 60.0, **(cost or {})}}}}}


def rows_of(exp_show):
    return aggregate_seeds(experiment_rows(json.loads(json.dumps(exp_show))))


def test_seeds_of_one_setting_are_averaged_with_their_spread():
    exp_show = [{**run("abc123", "2026-01-01T00:00:00", seed=0, accuracy=0.40, blind_accuracy=0.43, image_gain=-0.03),
                 "experiments": [
                     {"revs": [run("exp-s1", "2026-01-02T00:00:00", seed=1, accuracy=0.50, blind_accuracy=0.41,
                                   image_gain=0.09)]},
                     # how it was started is not a setting: a resumed run is the same setting
                     {"revs": [run("exp-s2", "2026-01-03T00:00:00", seed=2, accuracy=0.60, blind_accuracy=0.42,
                                   image_gain=0.18, params={"run": {"resume": True}})]},
                     {"revs": [{"rev": "failed", "name": "exp-failed", "data": {"metrics": {}}}]},
                     # a queued run shows the metrics of the commit it started from: left out
                     {"executor": {"state": "running"},
                      "revs": [run("exp-running", "2026-01-04T00:00:00", seed=3, accuracy=0.40)]}]}]
    (row,) = rows_of(exp_show)
    assert row["seeds"] == [0, 1, 2]
    assert row["accuracy"] == pytest.approx(0.5) and row["accuracy_sd"] == pytest.approx(0.1)
    table = render_table([row])
    assert ("| vqa_rad (variant=public) | resnet_bert | tiny | - | 0, 1, 2 | 50.00 ± 10.00% | 42.00 ± 1.00% | "
            "+8.00 ± 10.54 pts |") in table
    assert table.rstrip().endswith("| 1 min 00 s | abc123, exp-s1, exp-s2 |")


def test_the_latest_run_of_a_seed_counts_and_other_settings_get_their_own_rows():
    exp_show = [{**run("workspace", None, seed=0, accuracy=0.55), "experiments": None},
                {**run("abc123", "2026-01-01T00:00:00", seed=0, accuracy=0.40), "experiments": [
                    # A smoke run on a slice is another setting: it must not replace the full run's row.
                    {"revs": [run("exp-smoke", "2026-01-02T00:00:00", seed=0, accuracy=0.7296,
                                  params={"download": {"max_images_per_split": 200}})]},
                    {"revs": [run("exp-lr", "2026-01-03T00:00:00", seed=0, accuracy=0.3,
                                  params={"model": {"lr": 0.01}})]}]}]
    rows = rows_of(exp_show)
    assert sorted((r["data_setting"], r["runs"][0], r["accuracy"]) for r in rows) == [
        ("variant=public", "exp-lr", 0.3), ("variant=public", "workspace", 0.55),
        ("variant=public, first 200 images per split", "exp-smoke", 0.7296)]
    # The two full-data rows say what sets them apart.
    differs = {r["runs"][0]: r["differs"] for r in rows}
    assert differs["exp-lr"] == "model.lr=0.01" and differs["workspace"] == "model.lr=0.0005"
    assert "| vqa_rad (variant=public) | resnet_bert | tiny | model.lr=0.01 | 0 | 30.00% |" in render_table(rows)


def test_single_seed_rows_show_optional_columns_without_spread():
    exp_show = [{**run("abc123", "2026-01-01T00:00:00", accuracy=0.4, accuracy_closed=0.6, accuracy_open=0.2,
                       wups_09=0.45, wups_00=0.7), "experiments": None}]
    table = render_table(rows_of(exp_show))
    assert "| 0 | 40.00% | - | - | 60.00% | 20.00% | 70.00% | 45.00 | 70.00 | 1 min 00 s | abc123 |" in table


def predictions(correct, blind_correct):
    return [{"id": f"q{i}", "gold": "yes", "correct": bool(c), "blind_prediction": "yes" if b else "no"}
            for i, (c, b) in enumerate(zip(correct, blind_correct))]


def test_rows_get_intervals_and_a_paired_comparison_with_the_baseline():
    rng = np.random.default_rng(0)
    base = rng.random(200) < 0.5
    better = base | (rng.random(200) < 0.3)  # right wherever the baseline is, and on a third of the rest
    blind = rng.random(200) < 0.4
    exp_show = [{**run("main", "2026-01-01T00:00:00", accuracy=float(base.mean())), "experiments": [
        {"revs": [run("exp-better", "2026-01-02T00:00:00", accuracy=float(better.mean()), params={"model": {"lr": 1.0}})]},
        {"revs": [run("exp-same", "2026-01-03T00:00:00", accuracy=float(base.mean()), params={"model": {"lr": 2.0}})]}]}]
    rows = rows_of(exp_show)
    runs = {"main": predictions(base, blind), "exp-better": predictions(better, blind),
            "exp-same": predictions(base, blind)}
    by_run = {row["runs"][0]: row for row in rows}
    for name, row in by_run.items():
        add_intervals(row, [runs[name]])
    add_comparisons(rows, {name: [runs[name]] for name in runs}, "main")
    assert by_run["main"]["vs_baseline"] == "baseline"
    better_row = by_run["exp-better"]["vs_baseline"]
    assert better_row == paired_difference(base, better)
    assert better_row.difference == pytest.approx(better.mean() - base.mean())
    assert better_row.p_value < 0.05 and better_row.significant and better_row.low > 0
    assert by_run["exp-same"]["vs_baseline"].significant is False
    table = render_table(rows, baseline="main")
    assert "| vs main [95% CI], paired test over questions and seeds |" in table
    assert "+0.00 pts [+0.00, +0.00], p = 1: no significant difference (1 vs 1 seed: seed variation not counted)" in table
    assert f"[{100 * better_row.low:+.2f}, {100 * better_row.high:+.2f}], p = {better_row.p_value:.3g} (1 vs 1 seed" in table
    low, high = by_run["exp-better"]["accuracy_ci95"]
    assert low < better.mean() < high and f"[{100 * low:.2f}, {100 * high:.2f}]" in table


def test_a_baseline_that_is_not_there_is_named():
    rows = rows_of([{**run("main", "2026-01-01T00:00:00", accuracy=0.5), "experiments": None}])
    with pytest.raises(SystemExit, match="--baseline nope: no run of that name or revision"):
        add_comparisons(rows, {"main": [predictions([True], [True])]}, "nope")


def test_predictions_from_another_run_than_the_metrics_are_refused():
    """A workspace after `git checkout` without `dvc checkout`: eval.json of one run, predictions.jsonl
    of another. Its intervals would describe the other run, so compare names the mismatch."""
    answers = np.array([True, True, False, False])
    check_predictions_match("workspace", 0.5, predictions(answers, answers))  # the same run: accepted
    with pytest.raises(SystemExit, match=r"predictions.jsonl of workspace gives accuracy 0.7500 but its "
                                         r"metrics/eval.json says 0.5000: they come from different runs"):
        check_predictions_match("workspace", 0.5, predictions(np.array([True, True, True, False]), answers))


def test_a_workspace_without_its_predictions_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PredictionsMissing, match="the workspace has metrics but no metrics/predictions.jsonl: `dvc pull`"):
        read_predictions("workspace")


def test_rows_whose_predictions_are_not_here_keep_their_figures_without_intervals(monkeypatch, capsys):
    """A clone that never pulled one experiment's outputs: its row stays (no interval, no comparison)
    and a warning names it; the baseline's predictions must be here."""
    answers = np.array([True, False, True, False])
    exp_show = [{**run("main", "2026-01-01T00:00:00", accuracy=0.5), "experiments": [
        {"revs": [run("exp-away", "2026-01-02T00:00:00", accuracy=0.75, params={"model": {"lr": 1.0}})]}]}]
    runs = experiment_rows(json.loads(json.dumps(exp_show)))

    def read(rev):
        if rev == "exp-away":
            raise PredictionsMissing("cannot read metrics/predictions.jsonl of exp-away: `dvc exp pull` it")
        return predictions(answers, answers)

    monkeypatch.setattr(compare, "read_predictions", read)
    rows = aggregate_seeds(runs)
    add_predictions_figures(rows, runs, "main")
    by_run = {row["runs"][0]: row for row in rows}
    assert "accuracy_ci95" in by_run["main"] and "accuracy_ci95" not in by_run["exp-away"]
    assert by_run["exp-away"]["vs_baseline"] == "predictions not here"
    away = next(line for line in render_table(rows, baseline="main").splitlines() if line.endswith("| exp-away |"))
    assert "| 75.00% | - |" in away and "| predictions not here | exp-away |" in away
    assert "1 of 2 rows without intervals, their predictions are not here:\n  exp-away: cannot read" in capsys.readouterr().err
    rows = aggregate_seeds(runs)
    with pytest.raises(SystemExit, match="--baseline exp-away: its predictions are not here"):
        add_predictions_figures(rows, runs, "exp-away")


def test_a_baseline_replaced_by_a_later_run_of_its_seed_says_which_to_name():
    exp_show = [{**run("main", "2026-01-01T00:00:00", accuracy=0.5), "experiments": [
        {"revs": [run("exp-old", "2026-01-02T00:00:00", accuracy=0.5, params={"model": {"lr": 1.0}})]},
        {"revs": [run("exp-new", "2026-01-03T00:00:00", accuracy=0.5, params={"model": {"lr": 1.0}})]}]}]
    runs = experiment_rows(json.loads(json.dumps(exp_show)))
    rows = aggregate_seeds(runs)
    answers = predictions([True, False], [True, False])
    with pytest.raises(SystemExit, match="--baseline exp-old: a later run of the same setting and seed 0 stands for it"):
        add_comparisons(rows, {row["runs"][0]: [answers] for row in rows}, "exp-old", runs)
    add_comparisons(rows, {row["runs"][0]: [answers] for row in rows}, "exp-new", runs)
    assert {row["runs"][0]: row["vs_baseline"] for row in rows}["exp-new"] == "baseline"


def test_a_run_from_before_conf_is_read_from_its_resolved_parameters():
    """Commits made before params.yaml was composed from conf/ kept each run's values in
    data/params/resolved.json: such a run is the same setting as a run of today with the same values."""
    old = {"dataset": "vqa_rad", "model": "resnet_bert", "profile": "tiny", "seed": 1,
           "dataset_config": {"source": "path/to/vqa_rad", "variant": "public"},
           "download": {"max_images_per_split": None, "on_bad_record": "error"},
           "train": {"max_epochs": 20, "batch_size": 64, "resume": True, "launcher": "python", "compile": False},
           "family": {"lr": 0.0005}}
    before = {"rev": "old", "name": "old", "data": {"rev": "old", "timestamp": "2025-01-01T00:00:00", "params": {
        "params.yaml": {"data": {"dataset": "vqa_rad", "resnet_bert": {"tiny": {"lr": "recipe"}}}},
        "data/params/resolved.json": {"data": {"resolved": old}}},
        "metrics": {"metrics/eval.json": {"data": {"accuracy": 0.5}}}}}
    (row,) = rows_of([{**run("new", "2026-01-01T00:00:00", seed=0, accuracy=0.7), "experiments": [{"revs": [before]}]}])
    assert row["seeds"] == [0, 1] and row["runs"] == ["new", "old"] and row["accuracy"] == pytest.approx(0.6)


def seeded_setting(name, timestamp, answers, blind, *, lr):
    """An experiment per seed of one setting (learning rate ``lr``), named ``<name>-s<seed>``."""
    return [{"revs": [run(f"{name}-s{seed}", timestamp, seed=seed, accuracy=float(correct.mean()),
                          params={"model": {"lr": lr}})]} for seed, correct in enumerate(answers)]


def test_settings_of_three_seeds_are_compared_over_their_seeds_and_say_so():
    rng = np.random.default_rng(1)
    blind = rng.random(300) < 0.3
    base = rng.random((3, 300)) < 0.4
    # One seed of the candidate is far better, the others are the baseline's: a seed spread to count.
    candidate = base.copy()
    candidate[0] |= rng.random(300) < 0.2
    exp_show = [{**run("main", "2026-01-01T00:00:00", accuracy=0.1), "experiments": [
        *seeded_setting("base", "2026-01-02T00:00:00", base, blind, lr=1.0),
        *seeded_setting("cand", "2026-01-03T00:00:00", candidate, blind, lr=2.0)]}]
    runs = experiment_rows(json.loads(json.dumps(exp_show)))
    rows = [row for row in aggregate_seeds(runs) if row["seeds"] == [0, 1, 2]]
    answers = {f"{name}-s{seed}": predictions(correct, blind)
               for name, table in (("base", base), ("cand", candidate)) for seed, correct in enumerate(table)}
    by_run = {row["runs"][0]: row for row in rows}
    for row in rows:
        add_intervals(row, [answers[name] for name in row["runs"]])
    add_comparisons(rows, {row["runs"][0]: [answers[name] for name in row["runs"]] for row in rows}, "base-s0", runs)
    versus = by_run["cand-s0"]["vs_baseline"]
    assert versus == paired_difference(base, candidate)
    assert (versus.baseline_seeds, versus.candidate_seeds) == (3, 3) and versus.seed_variation_counted
    # Over the questions alone, the seeds averaged, this gain would be called significant; one seed of three
    # made it, so over the seeds it is not.
    assert paired_difference(base.mean(axis=0), candidate.mean(axis=0)).significant and not versus.significant
    assert by_run["cand-s0"]["accuracy_ci95"] == mean_interval(candidate)
    assert by_run["cand-s0"]["image_gain_ci95"] == mean_interval(candidate.astype(float) - blind)
    line = next(line for line in render_table(rows, baseline="base-s0").splitlines() if "cand-s0" in line)
    assert f"p = {versus.p_value:.3g}: no significant difference (3 vs 3 seeds) |" in line


def test_every_rendered_verdict_agrees_with_its_interval():
    """Rows of one to three seeds against a baseline of two: wherever the table shows an interval
    that excludes 0 it shows a p-value below 0.05 without "no significant difference", and the reverse."""
    rng = np.random.default_rng(2)
    blind = rng.random(200) < 0.3
    base = rng.random((2, 200)) < 0.5
    experiments = seeded_setting("base", "2026-01-02T00:00:00", base, blind, lr=0.0)
    tables = {"base": base}
    for index in range(12):
        seeds, gain = 1 + index % 3, 0.02 * index
        tables[f"c{index}"] = (rng.random((seeds, 200)) < 0.5 + gain) | (base[:1] & (rng.random(200) < 0.5))
        experiments += seeded_setting(f"c{index}", "2026-01-03T00:00:00", tables[f"c{index}"], blind, lr=1.0 + index)
    exp_show = [{**run("main", "2026-01-01T00:00:00", accuracy=0.1), "experiments": experiments}]
    runs = experiment_rows(json.loads(json.dumps(exp_show)))
    rows = [row for row in aggregate_seeds(runs) if row["runs"][0] != "main"]
    answers = {f"{name}-s{seed}": predictions(correct, blind) for name, table in tables.items()
               for seed, correct in enumerate(table)}
    add_comparisons(rows, {row["runs"][0]: [answers[name] for name in row["runs"]] for row in rows}, "base-s0", runs)
    verdicts = []
    for line in render_table(rows, baseline="base-s0").splitlines()[2:]:
        cell = line.split(" | ")[-2]
        if cell == "baseline":
            continue
        low, high = (float(bound) for bound in cell[cell.index("[") + 1:cell.index("]")].split(", "))
        p_value = float(cell.split("p = ")[1].split(":")[0].split(" ")[0])
        significant = "no significant difference" not in cell
        assert significant == (not low <= 0 <= high) == (p_value < 0.05), cell
        verdicts.append(significant)
    assert len(verdicts) == 12 and any(verdicts) and not all(verdicts)


def test_repeated_only_flags_add_up(tmp_path, capsys):
    exp_show = [{**run("main", "2026-01-01T00:00:00", accuracy=0.5), "experiments": [
        {"revs": [run(f"exp-{name}", "2026-01-02T00:00:00", accuracy=0.5, params={"model": {"lr": lr}})]}
        for name, lr in (("a", 1.0), ("b", 2.0), ("c", 3.0))]}]
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(exp_show))
    main(["--json", str(path), "--no-intervals", "--only", "exp-a", "--only", "exp-b"])
    table = capsys.readouterr().out
    assert "| exp-a |" in table and "| exp-b |" in table and "exp-c" not in table and "| main |" not in table
    main(["--json", str(path), "--no-intervals", "--only", "exp-a", "exp-c", "--only", "main"])
    table = capsys.readouterr().out
    assert "| exp-a |" in table and "| exp-c |" in table and "| main |" in table and "exp-b" not in table


def test_an_option_of_one_value_given_twice_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--json", str(tmp_path / "a.json"), "--baseline", "main", "--baseline", "exp-a"])
    assert "--baseline was given twice (main, then exp-a); it takes one value: give it once" in capsys.readouterr().err
