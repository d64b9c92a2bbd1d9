import json

from vqalab.report.compare import experiment_rows, latest_per_setting, render_table


def run(name, timestamp, **metrics):
    return {"rev": name, "name": name, "data": {"timestamp": timestamp, "metrics": {
        "metrics/eval.json": {"data": {"dataset": "vqa_rad", "profile": "tiny", "train_time_s": 60.0,
                                       "sbert_similarity": 0.7, **metrics}}}}}


def test_latest_run_per_setting_with_optional_columns(tmp_path):
    exp_show = [
        {**run("workspace", None, model="vilt", accuracy=0.5), "experiments": None},
        {**run("abc123", "2026-01-01T00:00:00", model="resnet_bert", accuracy=0.4, accuracy_closed=0.6,
               accuracy_open=0.2, wups_09=0.45, wups_00=0.7),
         "experiments": [{"revs": [run("exp-new", "2026-01-03T00:00:00", model="resnet_bert", accuracy=0.61)]},
                         {"revs": [run("exp-old", "2026-01-02T00:00:00", model="resnet_bert", accuracy=0.3)]},
                         {"revs": [{"rev": "failed", "name": "exp-failed", "data": {"metrics": {}}}]}]},
    ]
    rows = latest_per_setting(experiment_rows(json.loads(json.dumps(exp_show))))
    assert [(r["model"], r["run"]) for r in rows] == [("resnet_bert", "exp-new"), ("vilt", "workspace")]
    table = render_table(rows)
    assert "| vqa_rad | resnet_bert | tiny | 61.00% | 70.00% | 1 min 00 s | - | - | - | - | exp-new |" in table
    with_wups = render_table(latest_per_setting(experiment_rows(exp_show[1:2])[:1]))
    assert "| 60.00% | 20.00% | 45.00 | 70.00 | abc123 |" in with_wups
