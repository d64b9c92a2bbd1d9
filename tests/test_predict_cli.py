"""``vqalab predict``: tiny checkpoints of every family saved to tmp_path and driven through the
command line, and the pipeline's trained easy-VQA checkpoint where one exists."""

import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from configs import composed_params
from test_families import ANSWERS, tiny_config
from vqalab.cli import main
from vqalab.data.dataset import ProcessedData
from vqalab.data.preprocess import resize_images
from vqalab.data.schema import RECORDS_FILE, read_records
from vqalab.models.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from vqalab.models.registry import FAMILIES, get_family
from vqalab.pipeline.blind import blind_baseline
from vqalab.pipeline.features import frozen_encoder_features
from vqalab.pipeline.download import download_data
from vqalab.pipeline.preprocess import preprocess_data
from vqalab.pipeline.train import train_model
from vqalab.predict import Question, predict_questions
from vqalab.params import Params

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["is there a red shape?", "what shape is it?", "what colour?"]
# The mode that ranks the answer vocabulary: qwen2vl's default mode generates free text.
RANKING_MODE = {"qwen2vl": ["--mode", "candidates"]}


@pytest.fixture(scope="module")
def checkpoint_of(tmp_path_factory):
    """name -> folder of a saved tiny checkpoint of that family (built once per module)."""
    built = {}

    def get(name: str) -> Path:
        if name not in built:
            torch.manual_seed(0)
            model = get_family(name).model_class.build(tiny_config(name), ANSWERS, train_texts=QUESTIONS)
            built[name] = tmp_path_factory.mktemp(name) / "model"
            save_checkpoint(model.eval(), built[name], info={})
        return built[name]

    return get


def write_png(path: Path, *, size=(80, 50), seed=0) -> Path:
    """Noise, not a flat colour, so a different resize would give different pixels; RGBA, so the
    conversion to RGB is exercised; and not square and not the 64 px the tiny models take."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def predict(argv, capsys) -> str:
    main(["predict", *argv])
    return capsys.readouterr().out


def error_of(argv, capsys) -> str:
    """The one-line message of a user error; exit status 1 (SystemExit with a text code)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *argv])
    assert isinstance(exit_info.value.code, str), "a user error exits with a message, not status 0"
    assert capsys.readouterr().out == ""
    return exit_info.value.code


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_single_prediction_prints_an_answer_of_the_vocabulary(name, checkpoint_of, tmp_path, capsys):
    image = write_png(tmp_path / "photo.png")
    argv = ["--model", str(checkpoint_of(name)), "--image", str(image), "--question", "what shape is it?",
            *RANKING_MODE.get(name, [])]
    text = predict(argv, capsys)
    match = re.fullmatch(r"answer: (.+) \(score (\d\.\d{4})\)\n", text)
    assert match, text
    assert match[1] in ANSWERS and 0.0 <= float(match[2]) <= 1.0

    row = json.loads(predict([*argv, "--json"], capsys))
    assert row["answer"] == match[1] and row["image"] == str(image) and row["question"] == "what shape is it?"
    assert 0.0 <= row["score"] <= 1.0 and row["ranked"] == [{"answer": row["answer"], "score": row["score"]}]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_default_mode_answers_with_a_score(name, checkpoint_of, tmp_path, capsys):
    """Every family's default mode (qwen2vl: free generation, any text) gives an answer and a score."""
    argv = ["--model", str(checkpoint_of(name)), "--image", str(write_png(tmp_path / "photo.png")),
            "--question", "what colour?", "--json"]
    row = json.loads(predict(argv, capsys))
    assert isinstance(row["answer"], str) and 0.0 <= row["score"] <= 1.0


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_images_reach_the_model_as_the_preprocess_stage_prepares_them(name, checkpoint_of, tmp_path, monkeypatch):
    image = write_png(tmp_path / "photo.png")
    model, meta = load_checkpoint(checkpoint_of(name))
    seen, collate = [], model.collate

    def spy(items):
        seen.extend(items)
        return collate(items)

    monkeypatch.setattr(model, "collate", spy)
    predict_questions(model, [Question(image=image, question="what colour?", where="--image")], top_k=1,
                      mode=None, device=torch.device("cpu"), batch_size=1)
    size, resize = meta["config"]["image_size"], meta["config"]["resize"]
    expected = torch.from_numpy(resize_images(tmp_path, ["photo.png"], size, resize)[0])
    assert seen[0]["image"].dtype == torch.uint8 and seen[0]["image"].shape == (3, size, size)
    assert torch.equal(seen[0]["image"], expected)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_top_k_gives_k_answers_sorted_by_score(name, checkpoint_of, tmp_path, capsys):
    argv = ["--model", str(checkpoint_of(name)), "--image", str(write_png(tmp_path / "photo.png")),
            "--question", "is there a red shape?", "--top-k", "3", *RANKING_MODE.get(name, [])]
    ranked = json.loads(predict([*argv, "--json"], capsys))["ranked"]
    scores = [r["score"] for r in ranked]
    assert len(ranked) == 3 and scores == sorted(scores, reverse=True)
    assert len({r["answer"] for r in ranked}) == 3 and all(r["answer"] in ANSWERS for r in ranked)
    assert all(0.0 <= s <= 1.0 for s in scores) and sum(scores) <= 1.0 + 1e-5

    lines = predict(argv, capsys).splitlines()
    assert lines[0].startswith(f"answer: {ranked[0]['answer']} (score ")
    assert [line.split()[:2] for line in lines[1:]] == [[f"{i}.", r["answer"]] for i, r in enumerate(ranked, start=1)]


def write_batch(root: Path, *, suffix: str) -> Path:
    write_png(root / "images/a.png", seed=1)
    write_png(root / "images/b.png", size=(40, 90), seed=2)
    rows = [{"id": "q-a", "image": "images/a.png", "question": "what shape is it?"},
            {"image": "images/b.png", "question": "is there a red shape?"},
            {"image": "images/a.png", "question": "what colour?"}]
    path = root / f"records{suffix}"
    if suffix == ".csv":
        path.write_text("id,image,question\n" + "".join(f"{r.get('id', '')},{r['image']},{r['question']}\n" for r in rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_batch_form_writes_one_line_per_record_matching_single_predictions(checkpoint_of, tmp_path, capsys):
    model = checkpoint_of("resnet_bert")
    records = write_batch(tmp_path / "data", suffix=".jsonl")
    out = tmp_path / "out/predictions.jsonl"
    # Batches of 2: the second batch holds one question, the first pads two of different lengths.
    predict(["--model", str(model), "--records", str(records), "--out", str(out), "--batch-size", "2"], capsys)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["q-a", "records.jsonl:2", "records.jsonl:3"]
    assert all(r["answer"] in ANSWERS and 0.0 <= r["score"] <= 1.0 for r in rows)
    for row in rows:
        single = json.loads(predict(["--model", str(model), "--image", row["image"], "--question", row["question"],
                                     "--json"], capsys))
        assert single["answer"] == row["answer"] and single["score"] == pytest.approx(row["score"], abs=1e-5)


def test_batch_form_reads_csv_and_writes_to_stdout(checkpoint_of, tmp_path, capsys):
    root = tmp_path / "data"
    records = write_batch(root, suffix=".csv")
    lines = predict(["--model", str(checkpoint_of("resnet_bert")), "--records", str(records),
                     "--images-root", str(root), "--top-k", "2"], capsys).splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["id"] for r in rows] == ["q-a", "records.csv:3", "records.csv:4"]  # CSV lines count the header
    assert [r["image"] for r in rows] == [str(root / "images/a.png"), str(root / "images/b.png"), str(root / "images/a.png")]
    assert all(len(r["ranked"]) == 2 for r in rows)


def test_missing_model_folder_is_named(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    message = error_of(["--model", str(missing), "--image", str(write_png(tmp_path / "p.png")), "--question", "q?"], capsys)
    assert f"model folder {missing} does not exist" in message


def test_folder_without_checkpoint_json_is_named(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    message = error_of(["--model", str(tmp_path / "empty"), "--image", str(write_png(tmp_path / "p.png")),
                        "--question", "q?"], capsys)
    assert f"{tmp_path / 'empty'} holds no {CHECKPOINT_FILE}" in message


def test_missing_and_unreadable_images_are_named(checkpoint_of, tmp_path, capsys):
    model = str(checkpoint_of("resnet_bert"))
    missing = tmp_path / "nowhere.png"
    assert f"image {missing} does not exist" in error_of(["--model", model, "--image", str(missing), "--question", "q?"], capsys)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    assert f"cannot read image {broken}" in error_of(["--model", model, "--image", str(broken), "--question", "q?"], capsys)


def test_empty_question_is_refused(checkpoint_of, tmp_path, capsys):
    message = error_of(["--model", str(checkpoint_of("resnet_bert")), "--image", str(write_png(tmp_path / "p.png")),
                        "--question", "  "], capsys)
    assert "--question: the question is empty" in message


def test_repeated_questions_about_one_image_are_each_answered_in_order(checkpoint_of, tmp_path, capsys):
    model, image = str(checkpoint_of("resnet_bert")), str(write_png(tmp_path / "photo.png"))
    asked = ["what colour?", "what shape is it?", "is there a red shape?"]
    argv = ["--model", model, "--image", image, *(arg for question in asked for arg in ("--question", question))]
    rows = [json.loads(line) for line in predict([*argv, "--json"], capsys).splitlines()]
    assert [row["question"] for row in rows] == asked and {row["image"] for row in rows} == {image}
    for row in rows:  # each as if asked alone
        alone = json.loads(predict(["--model", model, "--image", image, "--question", row["question"], "--json"], capsys))
        assert alone["answer"] == row["answer"] and alone["score"] == pytest.approx(row["score"], abs=1e-5)
    text = predict(argv, capsys)
    blocks = re.findall(r"question: (.+)\nanswer: (.+) \(score (\d\.\d{4})\)\n", text)
    assert [(question, answer) for question, answer, _ in blocks] == [(row["question"], row["answer"]) for row in rows]
    assert text.count("\n") == 2 * len(asked)


def test_an_empty_question_among_several_is_named_by_its_place(checkpoint_of, tmp_path, capsys):
    message = error_of(["--model", str(checkpoint_of("resnet_bert")), "--image", str(write_png(tmp_path / "p.png")),
                        "--question", "what colour?", "--question", " "], capsys)
    assert "--question 2 of 2: the question is empty" in message


@pytest.mark.parametrize("option, values", [("--image", ["a.png", "b.png"]), ("--model", ["m1", "m2"]),
                                            ("--top-k", ["1", "3"]), ("--device", ["cpu", "auto"])])
def test_an_option_of_one_value_given_twice_is_refused(option, values, tmp_path, capsys):
    argv = {"--model": "m", "--image": "p.png", "--question": "q?"}
    argv.pop(option, None)
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", *(arg for item in argv.items() for arg in item), option, values[0], option, values[1]])
    assert exit_info.value.code == 2  # a usage error, before any file is read
    assert f"{option} was given twice ({values[0]}, then {values[1]}); it takes one value" in capsys.readouterr().err


def test_batch_errors_name_the_record(checkpoint_of, tmp_path, capsys):
    model = str(checkpoint_of("resnet_bert"))
    records = write_batch(tmp_path, suffix=".jsonl")
    out = tmp_path / "predictions.jsonl"
    lines = records.read_text().splitlines()

    def error_with(line2: dict) -> str:
        records.write_text("\n".join([lines[0], json.dumps(line2), lines[2]]) + "\n")
        return error_of(["--model", model, "--records", str(records), "--out", str(out)], capsys)

    assert "records.jsonl:2: the question is empty" in error_with({"image": "images/a.png", "question": ""})
    assert "records.jsonl:2: no 'question' key" in error_with({"image": "images/a.png"})
    assert f"records.jsonl:2: image {tmp_path / 'images/gone.png'} does not exist" in error_with(
        {"image": "images/gone.png", "question": "what colour?"})
    (tmp_path / "images/bad.png").write_bytes(b"not an image")
    assert f"records.jsonl:2: cannot read image {tmp_path / 'images/bad.png'}" in error_with(
        {"image": "images/bad.png", "question": "what colour?"})
    assert not out.exists(), "a failed batch leaves no output behind"


def test_records_file_without_a_column_is_named(checkpoint_of, tmp_path, capsys):
    records = tmp_path / "questions.csv"
    records.write_text("id,image\n1,a.png\n")
    message = error_of(["--model", str(checkpoint_of("resnet_bert")), "--records", str(records)], capsys)
    assert f"{records}: the header lacks the column(s) ['question']" in message
    missing = tmp_path / "absent.jsonl"
    assert f"records file {missing} does not exist" in error_of(
        ["--model", str(checkpoint_of("resnet_bert")), "--records", str(missing)], capsys)


def test_unknown_mode_lists_the_modes(checkpoint_of, tmp_path, capsys):
    message = error_of(["--model", str(checkpoint_of("resnet_bert")), "--image", str(write_png(tmp_path / "p.png")),
                        "--question", "q?", "--mode", "generate"], capsys)
    assert "--mode: resnet_bert predicts in modes ('classify',), not 'generate'" in message


def test_user_error_exits_non_zero_without_traceback(tmp_path):
    """Through the real entry point, as a shell runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "vqalab.cli", "predict", "--model", str(tmp_path / "nothing"),
                             "--image", str(write_png(tmp_path / "p.png")), "--question", "q?"],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"vqalab predict: error: model folder {tmp_path / 'nothing'} does not exist; pass --model the checkpoint folder "
        "the train stage wrote (e.g. models/resnet_bert)"]


def fake_checkpoint_folder(path: Path) -> Path:
    """Enough of a checkpoint for the argument checks, which only look for its checkpoint.json."""
    path.mkdir(parents=True)
    (path / CHECKPOINT_FILE).write_text("{}")
    return path


def test_a_missing_image_is_reported_at_once_by_the_console_command(tmp_path):
    """Issue 15.9: the real `vqalab` command, as a shell runs it, reports a bad argument before it
    imports torch and transformers (which took 8-10 s)."""
    command = Path(sys.executable).parent / "vqalab"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    missing = tmp_path / "missing.png"
    start = time.perf_counter()
    result = subprocess.run([str(command), "predict", "--model", str(fake_checkpoint_folder(tmp_path / "model")),
                             "--image", str(missing), "--question", "what shape is it?"],
                            env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"vqalab predict: error: --image: image {missing} does not exist; pass an existing image file"]
    assert seconds < 3, f"the error took {seconds:.1f} s"


CHECK_ARGUMENTS = """
import sys
from vqalab.predict import build_parser, check_arguments
questions = check_arguments(build_parser("vqalab predict").parse_args(sys.argv[1:]))
print(len(questions), sorted(m for m in ("torch", "transformers", "sklearn") if m in sys.modules))
"""


@pytest.mark.parametrize("form", ["image", "records"])
def test_arguments_are_checked_before_torch_is_imported(form, tmp_path):
    model = fake_checkpoint_folder(tmp_path / "model")
    if form == "image":
        argv = ["--image", str(write_png(tmp_path / "p.png")), "--question", "what colour?"]
    else:
        argv = ["--records", str(write_batch(tmp_path, suffix=".csv"))]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", CHECK_ARGUMENTS, "--model", str(model), *argv],
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=1) == ["1" if form == "image" else "3", "[]\n"]


def test_console_scripts_keep_compare_and_add_vqalab(capsys):
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '\nvqalab = "vqalab.cli:main"\n' in pyproject and '\nvqalab-compare = "vqalab.report.compare:main"\n' in pyproject
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--help"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("usage: vqalab compare")


@pytest.fixture(scope="module")
def trained_easy_vqa(tmp_path_factory):
    """(checkpoint folder, raw data folder) of the default model trained by the pipeline's own steps
    on the first 150 images of each easy-VQA split (a minute on 2 cores)."""
    work = tmp_path_factory.mktemp("trained")
    params = Params(composed_params("download.max_images_per_split=150"))
    download_data(params, work / "raw", downloads=work / "downloads")
    preprocess_data(params, work / "raw", work / "processed")
    data = ProcessedData.load(work / "processed")
    device = torch.device("cpu")
    trained = train_model(params, data, frozen_encoder_features(params, data, device=device),
                          blind_baseline(params, data.records, data.vocab.answers), device=device)
    save_checkpoint(trained.model, work / "model", info=trained.info)
    return work / "model", work / "raw"


@pytest.mark.slow
def test_trained_easy_vqa_checkpoint_answers_test_questions(trained_easy_vqa, tmp_path, capsys):
    """The pipeline's trained model, from the raw PNGs (not the preprocessed array): one question
    on each of five test images, of different kinds."""
    model, raw = trained_easy_vqa
    by_image = defaultdict(list)
    for record in read_records(raw / RECORDS_FILE):
        if record.split == "test":
            by_image[record.image].append(record)
    picked = [questions[k % len(questions)] for k, questions in enumerate(list(by_image.values())[:5])]
    records = tmp_path / "questions.jsonl"
    records.write_text("".join(json.dumps({"id": r.id, "image": r.image, "question": r.question}) + "\n" for r in picked))
    predict(["--model", str(model), "--records", str(records), "--images-root", str(raw), "--out",
             str(tmp_path / "predictions.jsonl")], capsys)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [r.id for r in picked]
    correct = sum(row["answer"] == record.answer for row, record in zip(rows, picked))
    assert correct >= 4, [(r.question, r.answer, row["answer"]) for row, r in zip(rows, picked)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_refused(checkpoint_of, tmp_path, capsys):
    message = error_of(["--model", str(checkpoint_of("resnet_bert")), "--image", str(write_png(tmp_path / "p.png")),
                        "--question", "q?", "--device", "cuda"], capsys)
    assert "--device = 'cuda' but no CUDA device is available; use auto or cpu" in message
