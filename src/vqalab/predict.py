"""``vqalab predict``: answer questions about your own images with a trained checkpoint of any family.

One image and its questions (prints each answer and its score, in the order of the questions;
``--top-k`` adds the ranked list, ``--json`` one JSON object per question instead):

    vqalab predict --model models/resnet_bert --image photo.png --question "what shape is it?" --top-k 3
    vqalab predict --model models/resnet_bert --image photo.png --question "what color?" --question "what shape?"

Many questions: a .jsonl or .csv file with ``image`` (a path relative to --images-root, by default
the records file's folder) and ``question``, optionally ``id``; one JSON line per record, in order,
to --out (written atomically) or to stdout:

    vqalab predict --model models/resnet_bert --records questions.csv --images-root photos --out predictions.jsonl

Each image is read and resized exactly as the preprocess stage prepared the model's training
images: the checkpoint's ``image_size`` and ``resize`` mode, through the same function.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vqalab.cli_arguments import Once
from vqalab.data.folder import read_rows
from vqalab.data.vocab import IGNORE_INDEX
from vqalab.io import write_jsonl
from vqalab.models.checkpoint import CHECKPOINT_FILE

# torch, transformers and the model families take seconds to import, so they are imported inside
# the functions that run after the arguments are checked (``check_arguments``): a mistyped path or
# an empty question is reported at once. The imports here are only for annotations.
if TYPE_CHECKING:
    import torch

    from vqalab.models.base import VQAModel

COLUMNS = ("image", "question")


class PredictInputError(Exception):
    """A problem with what the user passed (a path, a record, an option): reported in one line,
    without a traceback, because the fix is on the user's side."""


@dataclass(frozen=True)
class Question:
    image: Path
    question: str
    where: str  # names the question in error messages: "--image" or "records.jsonl:LINE"
    id: str | None = None


class Questions:
    """``VQADataset``-style items for ``model.collate`` (a map-style data set for a DataLoader); each
    image is read when its batch is made, so a large records file never holds all its images in memory."""

    def __init__(self, questions: list[Question], *, image_size: int, resize: str):
        self.questions = questions
        self.image_size = image_size
        self.resize = resize

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, index: int) -> dict:
        import torch

        from vqalab.data.preprocess import IMAGE_READ_ERRORS, read_square

        question = self.questions[index]
        try:
            pixels = read_square(question.image, self.image_size, self.resize)
        except IMAGE_READ_ERRORS as err:
            raise PredictInputError(f"{question.where}: cannot read image {question.image} ({err}); "
                                    f"pass an image file that PIL can open (PNG, JPEG, ...)") from None
        return {
            "image": torch.tensor(pixels),  # a copy: PIL's pixel buffer is read-only
            "question": question.question,
            # No gold answer: the label is ignored and a generative collator appends an empty answer.
            "answer": "",
            "answer_type": "",
            "label": IGNORE_INDEX,
        }


def text(value) -> str:
    """A record's field as stripped text (JSON may hold numbers or null; short CSV rows hold None)."""
    return "" if value is None else str(value).strip()


def checked_question(value, *, where: str) -> str:
    question = text(value)
    if not question:
        raise PredictInputError(f"{where}: the question is empty; give every image a question to answer")
    return question


def existing_image(path: Path, *, where: str, hint: str) -> Path:
    if not path.is_file():
        raise PredictInputError(f"{where}: image {path} does not exist; {hint}")
    return path


def question_from_row(where: str, row: dict, *, images_root: Path) -> Question:
    missing = [column for column in COLUMNS if column not in row]
    if missing:
        raise PredictInputError(f"{where}: no {' or '.join(repr(m) for m in missing)} key; every record needs "
                                f"{' and '.join(COLUMNS)} (optional: id)")
    question = checked_question(row["question"], where=where)
    if not text(row["image"]):
        raise PredictInputError(f"{where}: the image is empty; give its path relative to --images-root")
    image = existing_image(images_root / text(row["image"]), where=where,
                           hint=f"image paths are read relative to --images-root ({images_root})")
    # Without an id, the record's location still ties each output line to its input.
    return Question(image=image, question=question, where=where, id=text(row.get("id")) or where)


def read_questions(records: Path, *, images_root: Path) -> list[Question]:
    """Every record of a .jsonl or .csv file, checked before any model is loaded or image decoded."""
    if not records.is_file():
        raise PredictInputError(f"records file {records} does not exist; pass a .jsonl or .csv file to --records")
    try:
        rows = read_rows(records, required=COLUMNS)
    except ValueError as err:
        raise PredictInputError(str(err)) from None
    if not rows:
        raise PredictInputError(f"{records} holds no records")
    return [question_from_row(where, row, images_root=images_root) for where, row in rows]


def check_model_folder(directory: Path) -> None:
    if not directory.is_dir():
        raise PredictInputError(f"model folder {directory} does not exist; pass --model the checkpoint folder "
                                f"the train stage wrote (e.g. models/resnet_bert)")
    if not (directory / CHECKPOINT_FILE).is_file():
        raise PredictInputError(f"{directory} holds no {CHECKPOINT_FILE}, so it is not a vqalab checkpoint; pass "
                                f"--model the folder the train stage wrote (e.g. models/resnet_bert)")


def load_model(directory: Path, *, device: torch.device) -> VQAModel:
    from vqalab.models.checkpoint import load_checkpoint

    try:
        model, _ = load_checkpoint(directory)
    except (FileNotFoundError, ValueError) as err:  # a damaged or incomplete checkpoint folder
        raise PredictInputError(f"cannot load the checkpoint in {directory}: {err}") from None
    return model.to(device)


def prediction_row(question: Question, ranked: list[tuple[str, float]]) -> dict:
    answer, score = ranked[0]
    return {
        **({"id": question.id} if question.id is not None else {}),
        "image": str(question.image),
        "question": question.question,
        "answer": answer,
        "score": round(score, 6),
        "ranked": [{"answer": a, "score": round(s, 6)} for a, s in ranked],
    }


def predict_questions(model: VQAModel, questions: list[Question], *, top_k: int, mode: str | None,
                      device: torch.device, batch_size: int) -> list[dict]:
    """One prediction row per question, in order: the best answer, its score and the ``top_k`` ranking."""
    from vqalab.evaluation.predict import predict_dataset

    try:
        mode = model.check_mode(mode)
    except ValueError as err:
        raise PredictInputError(f"--mode: {err}") from None
    dataset = Questions(questions, image_size=model.config.image_size, resize=model.config.resize)
    # A progress bar helps only when there are batches to wait for.
    ranked = predict_dataset(model, dataset, batch_size=batch_size, device=device, top_k=top_k, mode=mode,
                             progress=len(dataset) > batch_size)
    return [prediction_row(q, r) for q, r in zip(questions, ranked)]


def format_prediction(row: dict, *, top_k: int, with_question: bool = False) -> str:
    """The answer and its score (``with_question``: after the question, for one image's several
    questions), and the ranked answers where ``top_k`` asks for more than one."""
    lines = [f"question: {row['question']}"] if with_question else []
    lines.append(f"answer: {row['answer']} (score {row['score']:.4f})")
    if top_k > 1:
        width = max(len(r["answer"]) for r in row["ranked"])
        lines += [f"{rank:>3}. {r['answer']:<{width}}  {r['score']:.4f}" for rank, r in enumerate(row["ranked"], start=1)]
    return "\n".join(lines)


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # A repeated --question adds a question; every other option holds one value and refuses a second.
    parser.add_argument("--model", type=Path, required=True, action=Once,
                        help="a checkpoint folder written by the train stage")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", type=Path, action=Once, help="one image to ask about (with --question)")
    source.add_argument("--records", type=Path, action=Once,
                        help="a .jsonl or .csv file of records with image and question")
    parser.add_argument("--question", action="append",
                        help="a question about --image (repeatable: one answer per question, in order)")
    parser.add_argument("--images-root", type=Path, action=Once,
                        help="folder the records' image paths are relative to (default: the records file's folder)")
    parser.add_argument("--out", type=Path, action=Once, help="JSONL file for the batch predictions (default: stdout)")
    parser.add_argument("--top-k", type=positive_int, default=1, action=Once,
                        help="how many ranked answers to give (default 1)")
    parser.add_argument("--mode", action=Once,
                        help="prediction mode (default: the model's first; qwen2vl: generate or candidates)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", action=Once, help="default: auto")
    parser.add_argument("--batch-size", type=positive_int, default=32, action=Once,
                        help="questions per forward pass (default 32)")
    parser.add_argument("--json", action="store_true", help="print each answer to --image's questions as a JSON line")
    return parser


def check_argument_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.image is not None and args.question is None:
        parser.error("--image needs --question")
    if args.records is not None and args.question is not None:
        parser.error("--question goes with --image; in the batch form every record holds its own question")
    if args.image is not None and (args.out is not None or args.images_root is not None):
        parser.error("--out and --images-root go with --records")


def check_arguments(args: argparse.Namespace) -> list[Question]:
    """The questions to answer, with every path, question and record checked, and the model folder:
    what a user may have mistyped, checked before anything heavy is imported."""
    if args.image is not None:
        image = existing_image(args.image, where="--image", hint="pass an existing image file")
        # With several questions, an empty one is named by its place among them.
        places = ([""] if len(args.question) == 1 else
                  [f" {number} of {len(args.question)}" for number in range(1, len(args.question) + 1)])
        questions = [Question(image=image, question=checked_question(question, where=f"--question{place}"),
                              where="--image") for question, place in zip(args.question, places)]
    else:
        questions = read_questions(args.records, images_root=args.images_root or args.records.parent)
    check_model_folder(args.model)
    return questions


def run(args: argparse.Namespace) -> None:
    questions = check_arguments(args)
    from vqalab.runtime import resolve_device

    try:
        device = resolve_device(args.device, setting="--device")
    except ValueError as err:
        raise PredictInputError(str(err)) from None
    model = load_model(args.model, device=device)
    rows = predict_questions(model, questions, top_k=args.top_k, mode=args.mode, device=device,
                             batch_size=args.batch_size)
    if args.image is not None:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False) if args.json else
                  format_prediction(row, top_k=args.top_k, with_question=len(rows) > 1))
    elif args.out is not None:
        write_jsonl(args.out, rows)
        print(f"wrote {len(rows)} predictions to {args.out}", file=sys.stderr)
    else:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))


def main(argv: list[str] | None = None, *, prog: str = "vqalab predict") -> None:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    check_argument_combinations(parser, args)
    try:
        run(args)
    except PredictInputError as err:
        raise SystemExit(f"{prog}: error: {err}") from None


if __name__ == "__main__":
    main()
