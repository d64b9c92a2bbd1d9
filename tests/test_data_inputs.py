"""Input files as users and official releases really write them: typos, stray commas, byte-order
marks, other encodings, broken lines, symlinked folders; and the report's shared-image counts."""

import json
import os

import pytest

from datasets_fixtures import (DAQUAR_GLUED_QUESTION, write_daquar, write_daquar_with_glued_id, write_image,
                               write_lines)
from test_datasets import by_id, materialize
from configs import dataset_config
from vqalab.data.collect import BadRecord
from vqalab.data.daquar import image_of
from vqalab.data.fetch import files_under
from vqalab.data.folder import read_rows

HEADER = "image,question,answer,split"


def folder_config(tmp_path, records_name):
    return dataset_config("folder", records=str(tmp_path / records_name), images=str(tmp_path / "imgs"))


# A: DAQUAR's glued image id ------------------------------------------------------------------
def test_daquar_finds_an_image_id_glued_to_the_word_before():
    # "th eimage999": the space slipped one letter; the question reads "in the image"
    assert image_of("how many drawers are visible in th eimage999 ?") == (
        "image999", "how many drawers are visible in the image?")
    assert image_of("what is in theimage5 ?") == ("image5", "what is in the image?")
    # other glued letters are kept as a word of their own: nothing of the question is lost
    assert image_of("what is in xyimage6 ?") == ("image6", "what is in xy the image?")
    # the usual forms read as before
    assert image_of("what is on the desk in the image12 ?") == ("image12", "what is on the desk in the image?")
    assert image_of("what is in image3 ?") == ("image3", "what is in the image?")
    assert image_of("image4 shows what ?") == ("image4", "the image shows what?")
    assert image_of("is image7 like image8 ?") == ("image8", "is the image like the image?")


def test_daquar_official_typo_line_is_read_with_on_bad_record_error(tmp_path):
    root = write_daquar_with_glued_id(tmp_path / "daquar")
    records, counts = materialize(tmp_path, "daquar", dataset_config("daquar", source=str(root)))
    assert counts["splits"]["train"]["questions"] == 4 and counts["skipped"] == {}
    glued = by_id(records)["daquar-full-train-3"]
    assert glued.image == "images/image2.png" and glued.answer == "3"
    assert glued.question == "how many drawers are visible in the image?"
    assert "th eimage2" in DAQUAR_GLUED_QUESTION


# B: CSV rows with more or fewer fields than the header ---------------------------------------
def write_ragged_csv(tmp_path):
    write_image(tmp_path / "imgs/img001.png")
    return write_lines(tmp_path / "records.csv", [
        HEADER,
        "img001.png,Is it red?,yes,train",
        "img001.png,What shape, roughly?,circle,train",  # an unquoted comma: 5 fields
        "img001.png,What colour?,red",  # no split: 3 fields
        "img001.png,Is it round?,yes,test",
    ])


def test_csv_row_with_more_fields_than_the_header_is_an_error_naming_line_and_counts(tmp_path):
    write_ragged_csv(tmp_path)
    with pytest.raises(BadRecord, match=r"records.csv:3: expected 4 fields .*found 5.*must be quoted.*on_bad_record: skip"):
        materialize(tmp_path, "folder", folder_config(tmp_path, "records.csv"))


def test_csv_row_with_fewer_fields_than_the_header_is_an_error_naming_line_and_counts(tmp_path):
    write_ragged_csv(tmp_path)
    lines = (tmp_path / "records.csv").read_text().splitlines()
    (tmp_path / "records.csv").write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # only the short row
    with pytest.raises(BadRecord, match=r"records.csv:3: expected 4 fields .*found 3"):
        materialize(tmp_path, "folder", folder_config(tmp_path, "records.csv"))


def test_csv_rows_with_wrong_field_counts_are_skipped_and_counted(tmp_path):
    write_ragged_csv(tmp_path)
    records, counts = materialize(tmp_path, "folder", folder_config(tmp_path, "records.csv"), on_bad_record="skip")
    assert [(r.question, r.answer) for r in records] == [("Is it red?", "yes"), ("Is it round?", "yes")]
    assert counts["skipped"] == {"wrong_field_count": 2}


def test_read_rows_without_a_collector_raises_naming_file_and_line(tmp_path):
    """``vqalab predict`` reads records through ``read_rows`` without a collector."""
    path = write_ragged_csv(tmp_path)
    with pytest.raises(ValueError, match=r"records.csv:3: expected 4 fields .*found 5"):
        read_rows(path)


def test_csv_quoted_fields_and_where_a_record_starts(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    path = write_lines(tmp_path / "records.csv", [
        HEADER, 'a.png,"What shape, roughly?",circle,train', 'a.png,"Two', 'lines?",yes,train', "a.png,q?,no,test"])
    assert [where for where, _ in read_rows(path)] == ["records.csv:2", "records.csv:3", "records.csv:5"]
    assert read_rows(path)[0][1]["question"] == "What shape, roughly?"
    # an unclosed quote swallows the lines after it: named with the span
    write_lines(path, [HEADER, 'a.png,"Oops,yes,train', "a.png,q?,no,test"])
    with pytest.raises(ValueError, match=r"records.csv:2: expected 4 fields .*found 2 in lines 2-3 \(an unclosed quote"):
        read_rows(path)
    write_lines(path, ["image,question,answer,question"])
    with pytest.raises(ValueError, match=r"the header names the column\(s\) \['question'\] more than once"):
        read_rows(path)


# C: encodings ---------------------------------------------------------------------------------
def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    write_lines(tmp_path / "records.csv", ["id,image,question,answer,split", "x1,a.png,Qué es?,sí,train",
                                               "x2,a.png,q?,no,test"], encoding="utf-8-sig")
    records, _ = materialize(tmp_path, "folder", folder_config(tmp_path, "records.csv"))
    assert [r.id for r in records] == ["x1", "x2"] and records[0].answer == "sí"


def test_jsonl_with_a_byte_order_mark_is_read(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    rows = [{"image": "a.png", "question": "q?", "answer": "yes", "split": "train"},
            {"image": "a.png", "question": "q2?", "answer": "no", "split": "test"}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8-sig")
    records, _ = materialize(tmp_path, "folder", folder_config(tmp_path, "records.jsonl"))
    assert len(records) == 2


@pytest.mark.parametrize("name", ["records.csv", "records.jsonl"])
@pytest.mark.parametrize("on_bad_record", ["error", "skip"])
def test_a_file_that_is_not_utf8_is_refused_naming_file_and_line(tmp_path, name, on_bad_record):
    write_image(tmp_path / "imgs/a.png")
    lines = ([HEADER, "a.png,q?,yes,train", "a.png,Qué es?,sí,train"] if name.endswith(".csv") else
             [json.dumps({"image": "a.png", "question": q, "answer": "yes", "split": "train"}, ensure_ascii=False)
              for q in ("q?", "Qué es?")])
    write_lines(tmp_path / name, lines, encoding="latin-1")
    line = 3 if name.endswith(".csv") else 2
    with pytest.raises(ValueError, match=rf"{name}:{line}: not UTF-8 text .*re-save it as UTF-8") as err:
        materialize(tmp_path, "folder", folder_config(tmp_path, name), on_bad_record=on_bad_record)
    assert str(tmp_path / name) in str(err.value)
    assert not isinstance(err.value, UnicodeDecodeError)


# D: malformed JSONL lines ----------------------------------------------------------------------
def write_broken_jsonl(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    good = {"image": "a.png", "question": "q?", "answer": "yes", "split": "train"}
    (tmp_path / "records.jsonl").write_text("\n".join([
        json.dumps(good), '{"image": "a.png", "question": "cut', "[1, 2]", json.dumps({**good, "split": "test"})]) + "\n")
    return folder_config(tmp_path, "records.jsonl")


def test_malformed_jsonl_line_is_an_error_naming_file_and_line(tmp_path):
    with pytest.raises(BadRecord, match=r"records.jsonl:2: not valid JSON .*on_bad_record: skip"):
        materialize(tmp_path, "folder", write_broken_jsonl(tmp_path))


def test_malformed_jsonl_lines_are_skipped_and_counted(tmp_path):
    records, counts = materialize(tmp_path, "folder", write_broken_jsonl(tmp_path), on_bad_record="skip")
    assert [r.split for r in records] == ["train", "test"]
    assert counts["skipped"] == {"invalid_json": 1, "not_a_json_object": 1}


def test_jsonl_lines_end_only_at_newlines(tmp_path):
    # U+2028 is valid unescaped inside a JSON string (json.dumps(ensure_ascii=False) writes it)
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps({"image": "a.png", "question": "one\u2028two?", "answer": "x"}, ensure_ascii=False) + "\n")
    assert read_rows(path) == [("records.jsonl:1", {"image": "a.png", "question": "one\u2028two?", "answer": "x"})]


# E: symlinked folders -------------------------------------------------------------------------
def test_daquar_images_in_a_symlinked_folder(tmp_path):
    root = write_daquar(tmp_path / "daquar")
    (root / "nyu_depth_images").rename(tmp_path / "elsewhere")
    (root / "images").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    records, counts = materialize(tmp_path, "daquar", dataset_config("daquar", source=str(root)))
    assert counts["splits"]["train"]["questions"] == 3 and counts["skipped"] == {}


def test_folder_counts_stray_files_in_symlinked_folders(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    write_image(tmp_path / "more/b.png")
    (tmp_path / "more/notes.txt").write_text("not an image of any record")
    (tmp_path / "imgs/linked").symlink_to(tmp_path / "more", target_is_directory=True)
    (tmp_path / "imgs/loop").symlink_to(tmp_path / "imgs", target_is_directory=True)  # must not loop
    rows = [{"image": "a.png", "question": "q?", "answer": "yes", "split": "train"},
            {"image": "linked/b.png", "question": "q?", "answer": "no", "split": "test"}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records, counts = materialize(tmp_path, "folder", folder_config(tmp_path, "records.jsonl"))
    assert len(records) == 2
    assert counts["ignored"] == {"unreferenced_image_files": 1}  # linked/notes.txt


def test_files_under_follows_links_once_per_path_and_stops_at_loops(tmp_path):
    write_image(tmp_path / "root/a/x.png")
    write_image(tmp_path / "outside/y.png")
    (tmp_path / "root/b").symlink_to(tmp_path / "outside", target_is_directory=True)
    (tmp_path / "root/c").symlink_to(tmp_path / "outside", target_is_directory=True)  # an alias: listed too
    (tmp_path / "root/a/up").symlink_to(tmp_path / "root", target_is_directory=True)  # a loop
    (tmp_path / "outside/self").symlink_to(tmp_path / "outside", target_is_directory=True)  # a loop
    (tmp_path / "root/broken.png").symlink_to(tmp_path / "nowhere.png")  # not a file
    (tmp_path / "root/z.png").symlink_to(tmp_path / "outside/y.png")  # a linked file
    found = sorted(p.relative_to(tmp_path / "root").as_posix() for p in files_under(tmp_path / "root"))
    assert found == ["a/x.png", "b/y.png", "c/y.png", "z.png"]
    assert os.path.islink(tmp_path / "root/a/up")


# F: the report's shared test images ------------------------------------------------------------
def report_inputs():
    quality = {"accuracy": 0.5, "accuracy_ci95": [0.4, 0.6], "blind_accuracy": 0.4, "image_gain": 0.1,
               "image_gain_ci95": [0.0, 0.2], "sbert_similarity": 0.6, "answer_coverage": 1.0,
               "shuffled_image_accuracy": 0.45, "image_sensitivity": 0.2}
    cost = {"train_time_s": 61, "train_samples_per_s": 100.0, "test_ms_per_question": 1.0, "peak_rss_mb": 1.0,
            "trainable_params": 1, "total_params": 2}
    details = {"model": "m", "profile": "p", "dataset": "d", "blind_C": 1.0, "image_gain_p": 0.04, "sbert_model": "s",
               "best_epoch": 1, "eval_time_s": 1.0, "n": 8, "wups_unavailable": "n/a"}
    plots = {"accuracy_by_answer_type": [], "accuracy_by_frequency": []}
    split = {"questions": 8, "images": 8, "answers": 2, "answers_outside_vocabulary": 0, "answer_coverage": 1.0}
    stats = {"train": split, "val": split, "test": split, "answer_vocabulary": 2, "image_size": 64,
             "images_shared_train_val": 0, "test_images_seen_in_train_or_val": 0,
             "images_shared_train_val_by_content": 0, "test_images_seen_in_train_or_val_by_content": 5}
    return (quality, cost, details, plots), stats


def test_report_gives_shared_test_images_by_path_and_by_content():
    from vqalab.report.report import render_report

    metrics, stats = report_inputs()
    report = render_report(*metrics, stats, plot_names=[])
    assert "test images also in train or val: 0 of 8 by path, 5 by content" in report
    # data_stats.json written before the content counts existed
    del stats["test_images_seen_in_train_or_val_by_content"], stats["images_shared_train_val_by_content"]
    report = render_report(*metrics, stats, plot_names=[])
    assert "test images also in train or val: 0 of 8 by path." in report and "by content" not in report


def test_report_counts_questions_whose_rephrasing_is_in_train():
    from vqalab.report.report import render_report

    metrics, stats = report_inputs()
    stats["test"] = {**stats["test"], "rephrased_in_train": 3}
    stats["val"] = {**stats["val"], "rephrased_in_train": 2}
    report = render_report(*metrics, stats, plot_names=[])
    assert "Questions whose rephrasing is in train: 3 of 8 test, 2 of 8 validation." in report
    stats["test"]["rephrased_in_train"] = 0  # no leak through rephrasings: nothing to say
    assert "rephrasing" not in render_report(*metrics, stats, plot_names=[])
