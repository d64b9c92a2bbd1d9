"""Turning a data set's own rows into validated records, images copied beside them.

Every loader feeds its rows to one ``RecordCollector``, so every data set gets the same checks:
an empty question or answer, a missing or unreadable image, a duplicate id. Each is an error that
names the file and record, or, with ``on_bad_record: skip``, a skip counted by reason in the
manifest, the logs and the split statistics. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vqalab.data.normalize import answer_type_from_answer, normalize_answer
from vqalab.data.schema import RECORDS_FILE, Record
from vqalab.io import write_jsonl

log = logging.getLogger(__name__)

ON_BAD_RECORD = ("error", "skip")
MANIFEST_FILE = "manifest.json"


class BadRecord(ValueError):
    pass


class RecordCollector:
    def __init__(self, out_dir: Path, *, on_bad_record: str = "error", final_dir: Path | None = None):
        """``out_dir``: where to write (a staging folder); ``final_dir``: where it will be once
        complete, the name messages give (the staging folder is gone by the time they are read)."""
        if on_bad_record not in ON_BAD_RECORD:
            raise ValueError(f"on_bad_record must be one of {ON_BAD_RECORD}, got {on_bad_record!r}")
        self.out_dir = out_dir
        self.final_dir = final_dir or out_dir
        self.on_bad_record = on_bad_record
        self.records: list[Record] = []
        self.skipped: Counter = Counter()
        self.ignored: Counter = Counter()  # things in the source that are not records, e.g. stray files
        self._ids: set[str] = set()
        self._image_ok: dict[str, str | None] = {}  # relative path -> problem (None when readable)

    def _target(self, rel: str) -> Path:
        target = (self.out_dir / rel).resolve()
        if not target.is_relative_to(self.out_dir.resolve()):
            raise ValueError(f"image path {rel!r} points outside the data set folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def add_image_file(self, rel: str, source: Path) -> None:
        """Copy an image file into the data set folder under ``rel`` (once per image)."""
        if rel in self._image_ok:
            return
        target = self._target(rel)
        if source.is_file():
            shutil.copyfile(source, target)
        self._image_ok[rel] = _check_image(target, shown=source)

    def add_image_bytes(self, rel: str, data: bytes | None, *, shown: str) -> None:
        if rel in self._image_ok:
            return
        target = self._target(rel)
        if data:
            target.write_bytes(data)
        self._image_ok[rel] = _check_image(target, shown=shown)

    def ignore(self, what: str, count: int) -> None:
        """Count source content that is not read as records (logged and in the manifest)."""
        if count:
            self.ignored[what] += count
            log.info("ignored %d %s", count, what.replace("_", " "))

    def bad(self, reason: str, where: str, detail: str) -> None:
        """A bad record (``where`` names its file and record): an error, or with ``on_bad_record:
        skip`` a skip counted under ``reason``. Loaders call it for records they cannot even read
        as rows (a malformed line), ``add`` for rows that fail its checks."""
        if self.on_bad_record == "error":
            raise BadRecord(f"{where}: {detail}. Fix the record, or set download.on_bad_record: skip "
                            f"to skip such records (they are counted).")
        self.skipped[reason] += 1
        log.warning("skipped %s: %s", where, detail)

    def add(self, *, id: str, image: str, question: object, answer: object, split: str, where: str,
            answer_type: str | None = None, question_type: str | None = None, group: object = None,
            train_only: bool = False) -> None:
        """Validate one row (``where`` names its file and record) and keep it as a ``Record``."""
        problem = None
        try:
            record = self._build(id=id, image=image, question=question, answer=answer, split=split,
                                 answer_type=answer_type, question_type=question_type, group=group,
                                 train_only=train_only)
        except BadRecord as err:
            problem = err.args  # (reason, detail); reported outside the handler, without its traceback
        except ValueError as err:  # a value the schema refuses, e.g. an unknown split
            raise ValueError(f"{where}: {err}") from None
        if problem is not None:
            reason, detail = problem
            self.bad(reason, where, detail)
            return
        self.records.append(record)
        self._ids.add(id)

    def _build(self, *, id, image, question, answer, split, answer_type, question_type, group,
               train_only) -> Record:
        if id in self._ids:
            raise BadRecord("duplicate_id", f"duplicate record id {id!r}")
        if not isinstance(question, str) or not question.strip():
            raise BadRecord("empty_question", f"empty or non-text question {question!r}")
        if isinstance(answer, (list, tuple)):  # several answers: kept as one comma-separated list
            answer = ", ".join(str(a) for a in answer)
        if answer is None or isinstance(answer, (bool, dict)) or not str(answer).strip():
            raise BadRecord("empty_answer", f"empty or non-text answer {answer!r}")
        normalized = normalize_answer(answer)
        if not normalized:
            raise BadRecord("empty_answer", f"answer {answer!r} is empty once normalised")
        problem = self._image_ok.get(image, f"image {image} is not in the source")
        if problem is not None:
            raise BadRecord("bad_image", problem)
        answer_type = (answer_type or "").strip().lower() or answer_type_from_answer(normalized)
        return Record(id=id, image=image, question=" ".join(question.split()), answer=normalized,
                      answer_raw=str(answer), split=split, answer_type=answer_type,
                      question_type=question_type or None, group=str(group) if group not in (None, "") else None,
                      train_only=train_only)

    def finish(self, *, max_images_per_split: int | None = None) -> dict:
        """Keep the first N images of each split if asked, write records.jsonl, return the counts."""
        records = self.records
        if max_images_per_split is not None:
            keep = set()
            for split in sorted({r.split for r in records}):
                keep |= {(split, img) for img in sorted({r.image for r in records if r.split == split})[:max_images_per_split]}
            records = [r for r in records if (r.split, r.image) in keep]
        used = {r.image for r in records}
        for rel in self._image_ok:
            if rel not in used:
                (self.out_dir / rel).unlink(missing_ok=True)
        if not records:
            raise ValueError(f"no usable records were read into {self.final_dir} (skipped: {dict(self.skipped)})")
        write_jsonl(self.out_dir / RECORDS_FILE, (r.to_dict() for r in records))
        counts = {}
        for split in sorted({r.split for r in records}):
            rows = [r for r in records if r.split == split]
            types = Counter(r.answer_type for r in rows)
            counts[split] = {"questions": len(rows), "images": len({r.image for r in rows}),
                             **{f"questions_{t}": n for t, n in sorted(types.items())}}
            log.info("%s: %d questions on %d images (%s)", split, len(rows), counts[split]["images"], dict(types))
        if self.skipped:
            log.warning("skipped %d bad records: %s", sum(self.skipped.values()), dict(self.skipped))
        return {"splits": counts, "skipped": dict(self.skipped), "ignored": dict(self.ignored)}


def _check_image(path: Path, *, shown: object) -> str | None:
    if not path.is_file():
        return f"image {shown} does not exist"
    try:
        with Image.open(path) as img:
            img.load()  # decodes the pixels: catches truncated files that verify() lets through
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        return f"image {shown} cannot be read ({err})"
    return None
