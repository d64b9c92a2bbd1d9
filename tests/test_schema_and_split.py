import dataclasses
import json

import numpy as np
import pytest

from vqalab.data.preprocess import split_statistics, split_train_val
from vqalab.data.schema import Record, read_records
from vqalab.data.vocab import AnswerVocab


def make_records(n_images=40, questions_per_image=3, n_test_images=5):
    records = []
    for split, count in (("train", n_images), ("test", n_test_images)):
        for image in range(count):
            for q in range(questions_per_image):
                answer = ["yes", "no", "red"][q]
                records.append(Record(
                    id=f"{split}-{image}-{q}", image=f"images/{split}/{image}.png", question=f"question {q}?",
                    answer=answer, answer_raw=answer, split=split,
                    answer_type="closed" if answer in ("yes", "no") else "open",
                ))
    return records


def test_validation_split_is_by_image_and_seeded():
    records = make_records()
    split, unit = split_train_val(records, val_fraction=0.25, val_split="auto", seed=0)
    assert unit == "image"  # the test images are new: validation images are new too
    train_images = {r.image for r in split if r.split == "train"}
    val_images = {r.image for r in split if r.split == "val"}
    assert val_images and not train_images & val_images
    assert len(val_images) == 10  # 25% of 40 images
    # every question of a validation image moved with it
    assert sum(r.split == "val" for r in split) == 3 * len(val_images)
    assert [r.split for r in split if r.image.startswith("images/test")] == ["test"] * 15
    assert split == split_train_val(records, val_fraction=0.25, val_split="auto", seed=0)[0]
    assert split != split_train_val(records, val_fraction=0.25, val_split="auto", seed=1)[0]


def records_on_training_images():
    """VQA-RAD's shape: the test asks other questions about the training images; each question
    comes with a rephrasing in its group."""
    records = []
    for image in range(20):
        for q in range(4):
            for phrasing in ("", " (rephrased)"):
                records.append(Record(
                    id=f"train-{image}-{q}{phrasing}", image=f"images/{image}.png", question=f"question {q}{phrasing}?",
                    answer="yes", answer_raw="yes", split="train", answer_type="closed", group=f"{image}-{q}"))
        records.append(Record(id=f"test-{image}", image=f"images/{image}.png", question="question 9?", answer="no",
                              answer_raw="no", split="test", answer_type="closed", group=f"{image}-9"))
    return records


def test_validation_is_drawn_by_question_where_the_test_asks_about_training_images():
    records = records_on_training_images()
    split, unit = split_train_val(records, val_fraction=0.25, val_split="auto", seed=0)
    assert unit == "question"
    val = [r for r in split if r.split == "val"]
    train = [r for r in split if r.split == "train"]
    assert len(val) == 40  # a quarter of the 80 groups, two records each
    # the validation questions are about images training also has, as the test's are ...
    assert {r.image for r in val} <= {r.image for r in train}
    # ... and no validation question has its rephrasing in training
    assert not {r.group for r in val} & {r.group for r in train}
    assert [r.split for r in split if r.id.startswith("test")] == ["test"] * 20


def test_train_only_records_stay_in_train_when_their_group_is_validated():
    """VQA-RAD frame: every record's frame is in train, a test record's too, so a validation
    question keeps its frame in train (the rephrasing stays out of the draw)."""
    records = records_on_training_images()
    frames = [dataclasses.replace(r, id=f"{r.id}-frame", question=f"frame of {r.question}", train_only=True)
              for r in records if r.split == "train" and not r.id.endswith("(rephrased)")]
    split, unit = split_train_val(records + frames, val_fraction=0.25, val_split="auto", seed=0)
    assert unit == "question"
    val = [r for r in split if r.split == "val"]
    assert len(val) == 40 and not any(r.train_only for r in val)  # the draw is the same as without frames
    assert [r.split for r in split if r.train_only] == ["train"] * len(frames)
    frame_groups = {r.group for r in split if r.train_only}
    assert {r.group for r in val} <= frame_groups  # every validation question's frame is in train
    stats = split_statistics(split, AnswerVocab.build(["yes"]))
    assert stats["val"]["rephrased_in_train"] == 40 and stats["test"]["rephrased_in_train"] == 0


def test_validation_unit_can_be_chosen():
    records = records_on_training_images()
    split, unit = split_train_val(records, val_fraction=0.25, val_split="image", seed=0)
    assert unit == "image"
    assert not {r.image for r in split if r.split == "val"} & {r.image for r in split if r.split == "train"}
    split, unit = split_train_val(make_records(), val_fraction=0.25, val_split="question", seed=0)
    assert unit == "question"
    # without groups each question is its own: questions of one image land on both sides
    val_images = {r.image for r in split if r.split == "val"}
    assert val_images & {r.image for r in split if r.split == "train"}


def test_a_shipped_validation_split_is_kept():
    records = [dataclasses.replace(r, split="val") if r.id.endswith("-0") and r.split == "train" else r
               for r in make_records()]
    assert split_train_val(records, val_fraction=0.25, val_split="auto", seed=0) == (records, "given")


def test_split_statistics_count_unseen_answers():
    records = make_records()
    records.append(Record(id="odd", image="images/test/0.png", question="q?", answer="blue", answer_raw="Blue",
                          split="test", answer_type="open"))
    stats = split_statistics(records, AnswerVocab.build(r.answer for r in records if r.split == "train"))
    assert stats["test"]["questions"] == 16
    assert stats["test"]["answers_outside_vocabulary"] == 1
    assert stats["test"]["answer_coverage"] == round(15 / 16, 4)
    assert stats["test_images_seen_in_train_or_val"] == 0


def test_record_validation_names_the_field():
    with pytest.raises(ValueError, match="field 'question' must be non-empty"):
        Record(id="x", image="a.png", question=" ", answer="yes", answer_raw="yes", split="train", answer_type="closed")
    with pytest.raises(ValueError, match="split 'dev'"):
        Record(id="x", image="a.png", question="q", answer="yes", answer_raw="yes", split="dev", answer_type="closed")
    with pytest.raises(ValueError, match="train_only record must have split 'train'"):
        Record(id="x", image="a.png", question="q", answer="yes", answer_raw="yes", split="test", answer_type="closed",
               train_only=True)
    with pytest.raises(ValueError, match="train_only must be true or false"):
        Record(id="x", image="a.png", question="q", answer="yes", answer_raw="yes", split="train",
               answer_type="closed", train_only="yes")


def test_read_records_names_file_and_line(tmp_path):
    good = {"id": "a", "image": "i.png", "question": "q?", "answer": "yes", "answer_raw": "Yes",
            "split": "train", "answer_type": "closed"}
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ValueError, match=r"records.jsonl:2: duplicate record id 'a'"):
        read_records(path)
    path.write_text(json.dumps({**good, "colour": "red"}) + "\n")
    with pytest.raises(ValueError, match=r"records.jsonl:1: unknown fields \['colour'\]"):
        read_records(path)
    path.write_text(json.dumps({k: v for k, v in good.items() if k != "answer"}) + "\n")
    with pytest.raises(ValueError, match=r"records.jsonl:1: .*answer"):
        read_records(path)


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
def test_resize_modes_give_squares(mode):
    from PIL import Image

    from vqalab.data.preprocess import to_square

    wide = Image.new("RGB", (200, 100), (255, 255, 255))
    square = to_square(wide, 64, mode)
    assert square.size == (64, 64)
    pixels = np.asarray(square)
    if mode == "pad":  # aspect ratio kept: a white 64 x 32 band centred on black
        assert pixels[:16].max() == 0 and pixels[48:].max() == 0 and pixels[16:48].min() == 255
    else:
        assert pixels.min() == 255


def test_unknown_resize_mode_is_named():
    from configs import family_config

    with pytest.raises(ValueError, match=r"resize must be one of \('squash', 'crop', 'pad'\), got 'fit'"):
        family_config("resnet_bert", resize="fit")
