"""The user's own data: a JSONL or CSV file of records plus a folder of images.

Each row needs ``image`` (a path relative to the image folder), ``question`` and ``answer``;
optional: ``id``, ``split`` (train / val / test), ``answer_type`` (closed / open; derived from
yes/no answers when absent) and ``question_type``. Without a ``split`` column a test split of
``test_fraction`` of the images is carved out, by image. The file must be UTF-8 (a byte-order
mark, as Excel's "CSV UTF-8" writes, is fine); a row that cannot be read (a CSV row with more or
fewer fields than the header, a JSONL line that is not a JSON object) is a bad record.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vqalab.data.collect import RecordCollector
from vqalab.data.fetch import files_under, local_source

REQUIRED = ("image", "question", "answer")
OPTIONAL = ("id", "split", "answer_type", "question_type")


@dataclass(frozen=True, kw_only=True)
class FolderConfig:
    records: str | None  # a .jsonl or .csv file
    images: str | None  # the folder that image paths are relative to
    test_fraction: float  # used only when the records have no split column
    split_seed: int

    def __post_init__(self) -> None:
        if not self.records or not self.images:
            raise ValueError("dataset folder needs dataset.records (a .jsonl or .csv file) and "
                             "dataset.images (a folder)")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")


def read_rows(path: Path, *, required: tuple[str, ...] = REQUIRED,
              bad: Callable[[str, str, str], None] | None = None) -> list[tuple[str, dict]]:
    """(where, row) for each record of a .jsonl or .csv file; a CSV header must hold ``required``
    (``vqalab predict`` reads questions without answers).

    The file must be UTF-8; a byte-order mark (Excel's "CSV UTF-8") is allowed. A record that
    cannot be read as a row (a CSV row whose field count differs from the header's, a JSONL line
    that is not a JSON object) goes to ``bad(reason, where, detail)`` (``RecordCollector.bad``:
    an error, or a counted skip); without ``bad`` it is a ValueError naming the file and line.
    """
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise ValueError(f"{path}: records must be a .jsonl or .csv file")
    text = read_utf8(path)
    bad = bad or _raise_bad
    return _csv_rows(path, text, required, bad) if suffix == ".csv" else _jsonl_rows(path, text, bad)


def read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (a leading byte-order mark dropped); any other encoding is an error
    naming the file and the first line that is not UTF-8. Not a bad record: when the encoding is
    wrong, every line may be, so the file is refused whatever ``on_bad_record`` says."""
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}; the file may be Latin-1 "
                         f"or Windows-1252). Records files must be UTF-8: re-save it as UTF-8 (in Excel: "
                         f"'CSV UTF-8') and rerun.") from None


def _raise_bad(reason: str, where: str, detail: str) -> None:
    raise ValueError(f"{where}: {detail}")


def _csv_rows(path: Path, text: str, required: tuple[str, ...],
              bad: Callable[[str, str, str], None]) -> list[tuple[str, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
        missing = set(required) - set(header)
        if missing:
            raise ValueError(f"{path}: the header lacks the column(s) {sorted(missing)}; found {header}")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise ValueError(f"{path}: the header names the column(s) {repeated} more than once; found {header}")
        rows = []
        next_start = reader.line_num + 1
        for fields in reader:
            # A record starts on the line after the previous one ended (a quoted field may span lines).
            start, end, next_start = next_start, reader.line_num, reader.line_num + 1
            where = f"{path.name}:{start}"
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if len(fields) != len(header):
                span = f" in lines {start}-{end} (an unclosed quote?)" if end > start else ""
                hint = ("; a field that holds a comma must be quoted, e.g. \"What shape, roughly?\""
                        if len(fields) > len(header) else "")
                bad("wrong_field_count", where, f"expected {len(header)} fields as in the header {header}, "
                    f"found {len(fields)}{span}: {fields}{hint}")
                continue
            rows.append((where, dict(zip(header, fields))))
    except csv.Error as err:
        raise ValueError(f"{path.name}:{reader.line_num}: cannot read the CSV ({err})") from None
    return rows


def _jsonl_rows(path: Path, text: str, bad: Callable[[str, str, str], None]) -> list[tuple[str, dict]]:
    rows = []
    # Lines end at \n (or \r\n, \r) only: str.splitlines would also cut at U+2028 or U+0085,
    # which JSON allows unescaped inside a string.
    for line_no, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{line_no}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            bad("invalid_json", where, f"not valid JSON ({err})")
            continue
        if not isinstance(row, dict):
            bad("not_a_json_object", where, f"must be a JSON object, got {type(row).__name__}")
            continue
        rows.append((where, row))
    return rows


def materialize(config: FolderConfig, *, collector: RecordCollector, downloads: Path) -> None:
    records_path = local_source(config.records, param="dataset.records")
    image_dir = local_source(config.images, param="dataset.images")
    rows = read_rows(records_path, bad=collector.bad)
    for where, row in rows:
        unknown = set(row) - set(REQUIRED) - set(OPTIONAL)
        if unknown:
            raise ValueError(f"{where}: unknown column(s) {sorted(unknown)}; allowed: {[*REQUIRED, *OPTIONAL]}")
    with_split = [bool(str(row.get("split") or "").strip()) for _, row in rows]
    if any(with_split) and not all(with_split):
        first = next(where for (where, _), has in zip(rows, with_split) if not has)
        raise ValueError(f"{first}: some records have a split and others do not; give every record one, or none")
    splits = ([str(row["split"]).strip().lower() for _, row in rows] if all(with_split)
              else carve_test_split([str(row.get("image")) for _, row in rows], config))
    for index, ((where, row), split) in enumerate(zip(rows, splits)):
        image = str(row.get("image") or "").strip()
        rel = f"images/{image}"
        if image:
            collector.add_image_file(rel, image_dir / image)
        collector.add(id=str(row.get("id") or f"folder-{index}"), image=rel, question=row.get("question"),
                      answer=row.get("answer"), split=split, answer_type=row.get("answer_type"),
                      question_type=row.get("question_type"), where=where)
    referenced = {str(row.get("image") or "").strip() for _, row in rows}
    collector.ignore("unreferenced_image_files", sum(
        1 for path in files_under(image_dir) if path.relative_to(image_dir).as_posix() not in referenced))


def carve_test_split(images: list[str], config: FolderConfig) -> list[str]:
    # Imported here: `vqalab predict` reads its records with read_rows, and scikit-learn takes a
    # second to import that a user with a wrong column name should not wait for.
    from sklearn.model_selection import GroupShuffleSplit

    splitter = GroupShuffleSplit(n_splits=1, test_size=config.test_fraction, random_state=config.split_seed)
    _, test_idx = next(splitter.split(images, groups=images))
    test = set(test_idx)
    return ["test" if i in test else "train" for i in range(len(images))]


CONFIG_CLASS = FolderConfig
