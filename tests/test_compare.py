import json

import pytest

from vqalab.report.compare import aggregate_seeds, experiment_rows, render_table

PARAMS = {"dataset": "vqa_rad", "model": "resnet_bert", "profile": "tiny", "download": {"max_images_per_split": None}}


def run(name, timestamp, *, seed=0, params=None, **metrics):
    metrics = {"dataset": "vqa_rad", "data_setting": "variant=public", "model": "resnet_bert", "profile": "tiny",
               "seed": seed, "train_time_s": 60.0, "sbert_similarity": 0.7, **metrics}
    return {"rev": name, "name": name, "data": {
        "timestamp": timestamp,
        "params": {"params.yaml": {"data": {**PARAMS, **(params or {}), "seed": seed}}},
        "metrics": {"metrics/eval.json": {"data": metrics}}}}


def rows_of(exp_show):
    return aggregate_seeds(experiment_rows(json.loads(json.dumps(exp_show))))


def test_seeds_of_one_setting_are_averaged_with_their_spread():
    exp_show = [{**run("abc123", "2026-01-01T00:00:00", seed=0, accuracy=0.40, blind_accuracy=0.43, image_gain=-0.03),
                 "experiments": [
                     {"revs": [run("exp-s1", "2026-01-02T00:00:00", seed=1, accuracy=0.50, blind_accuracy=0.41,
                                   image_gain=0.09)]},
                     {"revs": [run("exp-s2", "2026-01-03T00:00:00", seed=2, accuracy=0.60, blind_accuracy=0.42,
                                   image_gain=0.18)]},
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
    assert table.rstrip().endswith("| abc123, exp-s1, exp-s2 |")


def test_the_latest_run_of_a_seed_counts_and_other_settings_get_their_own_rows():
    exp_show = [{**run("workspace", None, seed=0, accuracy=0.55), "experiments": None},
                {**run("abc123", "2026-01-01T00:00:00", seed=0, accuracy=0.40), "experiments": [
                    # A smoke run on a slice is another setting: it must not replace the full run's row.
                    {"revs": [run("exp-smoke", "2026-01-02T00:00:00", seed=0, accuracy=0.7296,
                                  params={"download": {"max_images_per_split": 200}},
                                  data_setting="variant=public, first 200 images per split")]},
                    {"revs": [run("exp-lr", "2026-01-03T00:00:00", seed=0, accuracy=0.3,
                                  params={"resnet_bert": {"tiny": {"lr": 0.01}}})]}]}]
    rows = rows_of(exp_show)
    assert sorted((r["data_setting"], r["runs"][0], r["accuracy"]) for r in rows) == [
        ("variant=public", "exp-lr", 0.3), ("variant=public", "workspace", 0.55),
        ("variant=public, first 200 images per split", "exp-smoke", 0.7296)]
    # The two full-data rows say what sets them apart.
    differs = {r["runs"][0]: r["differs"] for r in rows}
    assert differs["exp-lr"] == "resnet_bert.tiny.lr=0.01" and differs["workspace"] == "resnet_bert.tiny.lr=None"
    assert "| vqa_rad (variant=public) | resnet_bert | tiny | resnet_bert.tiny.lr=0.01 | 0 | 30.00% |" in render_table(rows)


def test_single_seed_rows_show_optional_columns_without_spread():
    exp_show = [{**run("abc123", "2026-01-01T00:00:00", accuracy=0.4, accuracy_closed=0.6, accuracy_open=0.2,
                       wups_09=0.45, wups_00=0.7), "experiments": None}]
    table = render_table(rows_of(exp_show))
    assert "| 0 | 40.00% | - | - | 60.00% | 20.00% | 70.00% | 45.00 | 70.00 | 1 min 00 s | abc123 |" in table
