"""DAQUAR (Malinowski and Fritz, NIPS 2014): questions on 1,449 NYU-Depth V2 indoor scenes.

Source: the official files over plain HTTP (``official``) or a local folder or archive holding
them. ``answers: full`` is the 894-answer set (``qa.894.raw.{train,test}.txt``, ~6.8k / 5.7k
questions); ``answers: reduced`` the 37-answer set (``qa.37.raw.train.txt`` and the reduced test
file on 25 images). The official split is by image (795 / 654 images) and is kept.

File format: non-empty lines alternate question and answer; the image is named inside the
question ("... in the image12 ?"), and is rewritten to "the image" in the stored question.
Answers such as "chair, table" list several objects: they are kept as one normalised,
comma-separated list, and accuracy is exact match against that whole list (WUPS scores lists
item by item).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from vqalab.data.collect import RecordCollector
from vqalab.data.fetch import download, extract, files_under, local_copy

BASE_URL = "https://datasets.d2.mpi-inf.mpg.de/mateusz14visual-turing/"
IMAGES_ARCHIVE = "nyu_depth_images.tar"
QA_FILES = {
    "full": {"train": "qa.894.raw.train.txt", "test": "qa.894.raw.test.txt"},
    "reduced": {"train": "qa.37.raw.train.txt", "test": "qa.37.raw.reduced.test.txt"},
}
PARAM = "dataset.source"
# An image reference with the word before it (``prev``, itself no image id): "in the image12",
# "in image12", and the official train file's typo "in th eimage999", where letters are glued to
# the id (``glued``). ``_the_image`` rewrites it.
_IMAGE_REF = re.compile(r"(?:\b(?P<prev>(?!image\d+\b)\w+)\s+)?(?P<glued>[a-z]*?)(?P<id>image\d+)\b",
                        re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class DaquarConfig:
    source: str  # official | a local folder or archive with the files
    answers: str  # full (894 answers) | reduced (37 answers)

    def __post_init__(self) -> None:
        if self.answers not in QA_FILES:
            raise ValueError(f"answers must be one of {sorted(QA_FILES)}, got {self.answers!r}")


def parse_qa_file(text: str, *, where: str) -> list[tuple[int, str, str]]:
    """(line number of the question, question, answer) for each pair of non-empty lines."""
    lines = [(no, line.strip()) for no, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) % 2:
        raise ValueError(f"{where}: {len(lines)} non-empty lines, but questions and answers alternate "
                         f"(line {lines[-1][0]} has no answer); the file may be truncated")
    return [(q_no, question, answer) for (q_no, question), (_, answer) in zip(lines[::2], lines[1::2])]


def _the_image(match: re.Match) -> str:
    """The replacement of one image reference: "the image", with the word before it kept.

    Letters glued to the id are a typo. Where they complete the word before into "the" ("th
    eimage999": the space slipped one letter) or are "the" themselves ("in theimage5"), the
    reference reads "the image" ("in the image"). Other glued letters are kept as a word of their
    own ("xyimage5" -> "xy the image"), so no text of the question is lost.
    """
    prev, glued = match["prev"] or "", match["glued"]
    if (prev + glued).lower() == "the":
        return "the image"
    words = [prev] if prev else []
    if glued and glued.lower() != "the":
        words.append(glued)
    return " ".join([*words, "the image"])


def image_of(question: str) -> tuple[str | None, str]:
    """The image id named in a question (the last, if several), and the question with each
    reference replaced by "the image"."""
    ids = [match["id"].lower() for match in _IMAGE_REF.finditer(question)]
    cleaned = _IMAGE_REF.sub(_the_image, question)
    return (ids[-1] if ids else None), re.sub(r"\s+([?.!])", r"\1", cleaned)


def materialize(config: DaquarConfig, *, collector: RecordCollector, downloads: Path) -> None:
    files = QA_FILES[config.answers]
    if config.source == "official":
        root = downloads / "daquar"
        for name in [*files.values(), IMAGES_ARCHIVE]:
            download(BASE_URL + name, root / name, param=PARAM)
    else:
        root = local_copy(config.source, param=PARAM, downloads=downloads)
    images = index_images(root, downloads)
    for split, name in files.items():
        qa_path = root / name
        if not qa_path.is_file():
            raise FileNotFoundError(f"{qa_path} is missing; a DAQUAR copy holds {sorted(files.values())} and the images")
        for index, (line_no, raw_question, answer) in enumerate(parse_qa_file(qa_path.read_text(encoding="utf-8"), where=str(qa_path))):
            image_id, question = image_of(raw_question)
            rel = f"images/{image_id}.png" if image_id else "images/(no image named in the question)"
            if image_id in images:
                collector.add_image_file(rel, images[image_id])
            collector.add(id=f"daquar-{config.answers}-{split}-{index}", image=rel, question=question,
                          answer=answer, split=split, where=f"{qa_path.name}:{line_no}")


def index_images(root: Path, downloads: Path) -> dict[str, Path]:
    """image id -> PNG path, from an unpacked folder (symlinked folders followed) or the official tar."""
    if (root / IMAGES_ARCHIVE).is_file() and not _image_files(root):
        root = extract(root / IMAGES_ARCHIVE, downloads / "daquar_images")
    found = {p.stem.lower(): p for p in _image_files(root)}
    if not found:
        raise FileNotFoundError(f"no image*.png under {root}: put the NYU-Depth images ({IMAGES_ARCHIVE}) beside the QA files")
    return found


def _image_files(root: Path) -> list[Path]:
    return [path for path in files_under(root) if fnmatch.fnmatchcase(path.name, "image*.png")]


CONFIG_CLASS = DaquarConfig
