"""Every data set loader on small files in its real format, plus the bad-record rules."""

import csv
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from datasets_fixtures import png_bytes, write_daquar, write_image, write_parquet, write_slake, write_vqa_rad_official
from configs import dataset_config
from vqalab.data.collect import BadRecord, RecordCollector
from vqalab.data.daquar import image_of, parse_qa_file
from vqalab.data.registry import get_dataset
from vqalab.data.schema import read_records

# A copy of VQA-RAD in its official layout: $VQALAB_VQA_RAD, else the development machines' shared copy.
SHARED_VQA_RAD = Path(os.environ.get("VQALAB_VQA_RAD", Path(__file__).resolve().parents[2] / "shared/data/vqa_rad"))


def materialize(tmp_path, name, config, *, on_bad_record="error", max_images=None):
    out = tmp_path / "out"
    out.mkdir(parents=True, exist_ok=True)
    collector = RecordCollector(out, on_bad_record=on_bad_record)
    get_dataset(name).materialize(config, collector=collector, downloads=tmp_path / "downloads")
    counts = collector.finish(max_images_per_split=max_images)
    records = read_records(out / "records.jsonl")
    for record in records:
        assert (out / record.image).is_file(), record.image
    return records, counts


def by_id(records):
    return {r.id: r for r in records}


# VQA-RAD ----------------------------------------------------------------------------------
def test_vqa_rad_official_layout(tmp_path):
    source = write_vqa_rad_official(tmp_path / "rad")
    records, counts = materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(source)))
    assert counts["splits"]["train"]["questions"] == 3 and counts["splits"]["test"]["questions"] == 1
    rows = by_id(records)
    assert rows["vqa_rad-0"].answer_type == "closed"  # "CLOSED " stripped
    assert rows["vqa_rad-1"].answer == "2" and rows["vqa_rad-1"].answer_raw == "2"  # JSON number -> text
    assert rows["vqa_rad-2"].answer == "liver" and rows["vqa_rad-2"].answer_raw == "The Liver"
    assert rows["vqa_rad-2"].question_type == "ORGAN"
    assert rows["vqa_rad-3"].split == "test"


def test_vqa_rad_frame_variant_adds_every_frame_to_train(tmp_path):
    source = write_vqa_rad_official(tmp_path / "rad")
    records, counts = materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(source), variant="frame"))
    frames = [r for r in records if r.id.endswith("-frame")]
    assert {r.question for r in frames} == {"Is this an image of a CT?", "Is the image normal?"}
    assert all(r.split == "train" and r.train_only for r in frames)
    assert not any(r.train_only for r in records if not r.id.endswith("-frame"))
    # a frame rephrases its record: one group, so a validation split by question keeps them together
    group = {r.id: r.group for r in records}
    assert group["vqa_rad-0-frame"] == group["vqa_rad-0"] == "link-0"
    assert counts["splits"]["train"]["questions"] == 5 and counts["splits"]["test"]["questions"] == 1


def test_vqa_rad_archive_source(tmp_path):
    source = write_vqa_rad_official(tmp_path / "rad")
    archive = shutil.make_archive(str(tmp_path / "vqa_rad_copy"), "zip", source)
    records, _ = materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=archive))
    assert len(records) == 4


def test_vqa_rad_hf_parquet_layout(tmp_path):
    red, blue = png_bytes((255, 0, 0)), png_bytes((0, 0, 255))
    write_parquet(tmp_path / "hf/data/train-00000-of-00001.parquet",
                  [(red, "is there a mass?", "yes"), (red, "where is the mass?", "left lobe"), (blue, "is it ct?", "no")])
    write_parquet(tmp_path / "hf/data/test-00000-of-00001.parquet", [(red, "is the liver normal?", "Yes")])
    records, counts = materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(tmp_path / "hf")))
    assert counts["splits"]["train"] == {"questions": 3, "images": 2, "questions_closed": 2, "questions_open": 1}
    test = [r for r in records if r.split == "test"]
    assert test[0].answer_type == "closed" and test[0].answer == "yes"  # the yes/no rule
    # the same image bytes in both splits get the same content-named file
    assert test[0].image == records[0].image
    with pytest.raises(ValueError, match="needs the official release"):
        materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(tmp_path / "hf"), variant="frame"))


def test_vqa_rad_unknown_layout_names_the_param(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="dataset.source"):
        materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(tmp_path / "nowhere")))


@pytest.mark.vqa_rad
@pytest.mark.skipif(not SHARED_VQA_RAD.is_dir(), reason=f"no VQA-RAD copy at {SHARED_VQA_RAD} (set VQALAB_VQA_RAD)")
@pytest.mark.parametrize(("variant", "train"), [("public", 1797), ("frame", 3064)])
def test_real_vqa_rad_counts(tmp_path, variant, train):
    records, counts = materialize(tmp_path, "vqa_rad", dataset_config("vqa_rad", source=str(SHARED_VQA_RAD), variant=variant))
    assert counts["splits"]["train"]["questions"] == train
    assert counts["splits"]["test"] == {"questions": 451, "images": 203, "questions_closed": 272, "questions_open": 179}
    assert counts["skipped"] == {}
    assert all(r.answer for r in records)


# PathVQA ------------------------------------------------------------------------------------
def test_path_vqa_keeps_its_validation_split(tmp_path):
    img = png_bytes((9, 9, 9))
    write_parquet(tmp_path / "pv/data/train-0.parquet", [(img, f"question {i}?", "yes" if i % 2 else "gland") for i in range(5)])
    write_parquet(tmp_path / "pv/data/validation-0.parquet", [(png_bytes((1, 2, 3)), "what is it?", "nucleus")])
    write_parquet(tmp_path / "pv/data/test-0.parquet", [(png_bytes((3, 2, 1)), "is it benign?", "no")])
    records, counts = materialize(tmp_path, "path_vqa", dataset_config("path_vqa", source=str(tmp_path / "pv")))
    assert {s: c["questions"] for s, c in counts["splits"].items()} == {"train": 5, "val": 1, "test": 1}
    assert counts["splits"]["train"]["images"] == 1  # five questions, one image stored once


# SLAKE --------------------------------------------------------------------------------------
@pytest.mark.parametrize("zipped_images", [False, True])
def test_slake_english_only_with_types(tmp_path, zipped_images):
    root = write_slake(tmp_path / "slake")
    if zipped_images:
        with zipfile.ZipFile(root / "imgs.zip", "w") as zf:
            for path in (root / "imgs").rglob("*.jpg"):
                zf.write(path, path.relative_to(root))
        shutil.rmtree(root / "imgs")
    records, counts = materialize(tmp_path, "slake", dataset_config("slake", source=str(root)))
    assert {s: c["questions"] for s, c in counts["splits"].items()} == {"train": 2, "val": 1, "test": 1}
    rows = by_id(records)
    assert rows["slake-train-3"].answer_type == "closed" and rows["slake-train-3"].question_type == "Abnormality"
    assert rows["slake-val-4"].answer == "left lung"
    assert all(r.question.isascii() for r in records)


# DAQUAR -------------------------------------------------------------------------------------
def test_daquar_full_and_reduced(tmp_path):
    root = write_daquar(tmp_path / "daquar")
    records, counts = materialize(tmp_path, "daquar", dataset_config("daquar", source=str(root)))
    assert {s: c["questions"] for s, c in counts["splits"].items()} == {"train": 3, "test": 1}
    rows = by_id(records)
    assert rows["daquar-full-train-1"].answer == "chair, table"  # a list answer, kept whole
    assert rows["daquar-full-train-1"].question == "what are the objects in the image?"
    assert rows["daquar-full-train-2"].answer == "2"
    assert rows["daquar-full-train-0"].image == "images/image1.png"
    reduced, _ = materialize(tmp_path / "r", "daquar", dataset_config("daquar", source=str(root), answers="reduced"))
    assert [r.answer for r in reduced] == ["table", "chair"]


def test_daquar_parser_rules():
    assert image_of("what is on the desk in the image12 ?") == ("image12", "what is on the desk in the image?")
    assert image_of("what is this ?") == (None, "what is this?")
    with pytest.raises(ValueError, match=r"qa.txt: 3 non-empty lines.*line 3 has no answer"):
        parse_qa_file("q1 in the image1 ?\na1\nq2 in the image2 ?\n", where="qa.txt")


# folder -------------------------------------------------------------------------------------
def test_folder_jsonl_with_splits(tmp_path):
    for name in ("a.png", "b.png", "sub/c.png"):
        write_image(tmp_path / "imgs" / name)
    rows = [
        {"image": "a.png", "question": "Is it red?", "answer": "Yes", "split": "train"},
        {"image": "b.png", "question": "What colour?", "answer": "red", "split": "train", "question_type": "color"},
        {"image": "sub/c.png", "question": "Is it blue?", "answer": "no", "split": "test", "id": "mine-1"},
    ]
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "imgs" / "notes.txt").write_text("not an image of any record")
    records, counts = materialize(tmp_path, "folder", dataset_config("folder", records=str(tmp_path / "records.jsonl"), images=str(tmp_path / "imgs")))
    assert counts["ignored"] == {"unreferenced_image_files": 1}
    rows = by_id(records)
    assert rows["mine-1"].split == "test" and rows["mine-1"].image == "images/sub/c.png"
    assert rows["folder-1"].question_type == "color" and rows["folder-0"].answer_type == "closed"


def test_folder_csv_without_split_carves_test_by_image(tmp_path):
    with (tmp_path / "records.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["image", "question", "answer"])
        writer.writeheader()
        for i in range(10):
            write_image(tmp_path / "imgs" / f"{i}.png")
            for q in range(2):
                writer.writerow({"image": f"{i}.png", "question": f"question {q}?", "answer": "yes"})
    config = dataset_config("folder", records=str(tmp_path / "records.csv"), images=str(tmp_path / "imgs"), test_fraction=0.3)
    records, counts = materialize(tmp_path, "folder", config)
    assert counts["splits"]["test"] == {"questions": 6, "images": 3, "questions_closed": 6}
    test_images = {r.image for r in records if r.split == "test"}
    assert not test_images & {r.image for r in records if r.split == "train"}


def test_folder_rejects_mixed_splits_and_unknown_columns(tmp_path):
    write_image(tmp_path / "imgs/a.png")
    path = tmp_path / "records.jsonl"
    config = dataset_config("folder", records=str(path), images=str(tmp_path / "imgs"))
    path.write_text(json.dumps({"image": "a.png", "question": "q?", "answer": "a", "split": "train"}) + "\n"
                    + json.dumps({"image": "a.png", "question": "q2?", "answer": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"records.jsonl:2: some records have a split"):
        materialize(tmp_path, "folder", config)
    path.write_text(json.dumps({"image": "a.png", "question": "q?", "answer": "a", "colour": "red"}) + "\n")
    with pytest.raises(ValueError, match=r"records.jsonl:1: unknown column\(s\) \['colour'\]"):
        materialize(tmp_path, "folder", config)
    path.write_text(json.dumps({"image": "../../etc/passwd", "question": "q?", "answer": "a", "split": "train"}) + "\n")
    with pytest.raises(ValueError, match="outside the data set folder"):
        materialize(tmp_path, "folder", config)


# bad records --------------------------------------------------------------------------------
def bad_folder(tmp_path):
    write_image(tmp_path / "imgs/ok.png")
    (tmp_path / "imgs/corrupt.png").write_bytes(png_bytes()[:40])  # truncated
    rows = [
        {"id": "1", "image": "ok.png", "question": "fine?", "answer": "yes", "split": "train"},
        {"id": "2", "image": "missing.png", "question": "q?", "answer": "yes", "split": "train"},
        {"id": "3", "image": "corrupt.png", "question": "q?", "answer": "yes", "split": "train"},
        {"id": "4", "image": "ok.png", "question": "  ", "answer": "yes", "split": "train"},
        {"id": "5", "image": "ok.png", "question": "q?", "answer": "", "split": "train"},
        {"id": "1", "image": "ok.png", "question": "again?", "answer": "no", "split": "test"},
        {"id": "6", "image": "ok.png", "question": "q?", "answer": None, "split": "test"},
        {"id": "7", "image": "ok.png", "question": "kept?", "answer": "no", "split": "test"},
    ]
    (tmp_path / "records.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return dataset_config("folder", records=str(tmp_path / "records.jsonl"), images=str(tmp_path / "imgs"))


def test_bad_records_are_errors_that_name_file_and_record(tmp_path):
    with pytest.raises(BadRecord, match=r"records.jsonl:2: image .*missing.png does not exist.*on_bad_record: skip"):
        materialize(tmp_path, "folder", bad_folder(tmp_path))


def test_bad_records_skipped_are_counted(tmp_path):
    records, counts = materialize(tmp_path, "folder", bad_folder(tmp_path), on_bad_record="skip")
    assert [r.id for r in records] == ["1", "7"]
    assert counts["skipped"] == {"bad_image": 2, "empty_question": 1, "empty_answer": 2, "duplicate_id": 1}


def test_max_images_per_split_keeps_whole_images(tmp_path):
    root = write_daquar(tmp_path / "daquar")
    records, counts = materialize(tmp_path, "daquar", dataset_config("daquar", source=str(root)), max_images=1)
    assert counts["splits"]["train"] == {"questions": 2, "images": 1, "questions_open": 2}
    assert not (tmp_path / "out/images/image2.png").exists()  # dropped images are not left behind
