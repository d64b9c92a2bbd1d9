"""The error-analysis gallery: one self-contained HTML page of the test questions.

Each row shows the image, the question, the gold and the predicted answer (with its score),
whether it was right, the answer type and the gold answer's frequency bucket in train. Filters
(right/wrong, answer type, bucket) are also read from the URL hash (``#correct=wrong&type=open``),
so a link or a headless browser can open a filtered view.

The page makes no request: CSS and JS are inline and each distinct image is embedded once, as a
data URI in a CSS class that every row about that image reuses.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from vqalab.data.dataset import ProcessedData
from vqalab.evaluation.metrics import frequency_bucket
from vqalab.io import atomic_path
from vqalab.report.report import FREQUENCY_ORDER

log = logging.getLogger(__name__)

THUMBNAIL_PX = 96  # the longest side; easy-VQA's 64 px images stay as they are
FILTERS = (("correct", "result"), ("type", "answer type"), ("bucket", "frequency in train"))


@dataclass(frozen=True)
class GalleryRow:
    question: str
    gold: str
    prediction: str
    score: float
    correct: bool
    answer_type: str
    bucket: str
    train_count: int
    image: str  # path in the processed folder's image index

    @property
    def filter_values(self) -> dict[str, str]:
        """The row's value for each filter, as the page's selects and URL hash name them."""
        return {"correct": "correct" if self.correct else "wrong", "type": self.answer_type, "bucket": self.bucket}


def gallery_rows(predictions: list[dict], data: ProcessedData) -> list[GalleryRow]:
    """Join the evaluate stage's predictions with their records: the image and the gold answer's
    training count live in the processed data, not in the predictions file."""
    by_id = {r.id: r for r in data.records}
    train_counts = Counter(r.answer for r in data.records if r.split == "train")
    rows = []
    for p in predictions:
        record = by_id.get(p["id"])
        if record is None:
            raise ValueError(f"prediction {p['id']!r} has no record in the processed data: rerun the evaluate stage")
        count = train_counts.get(p["gold"], 0)
        rows.append(GalleryRow(question=p["question"], gold=p["gold"], prediction=p["prediction"], score=p["score"],
                               correct=p["correct"], answer_type=p["answer_type"], bucket=frequency_bucket(count),
                               train_count=count, image=record.image))
    return rows


def cap_rows(rows: list[GalleryRow], max_rows: int) -> list[GalleryRow]:
    """Wrong answers first (the point of the page), each group in test order, at most ``max_rows``."""
    return sorted(rows, key=lambda row: row.correct)[:max_rows]


def thumbnail_data_uri(image: np.ndarray) -> str:
    """A data URI of a 3 x H x W uint8 image, shrunk to a thumbnail. PNG keeps flat synthetic
    pictures exact and small; JPEG is several times smaller for photographs: keep the smaller."""
    picture = Image.fromarray(np.ascontiguousarray(np.asarray(image).transpose(1, 2, 0)))
    picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    encoded = {}
    for fmt, options in (("png", {"optimize": True}), ("jpeg", {"quality": 85})):
        buffer = io.BytesIO()
        picture.save(buffer, format=fmt, **options)
        encoded[fmt] = buffer.getvalue()
    fmt = min(encoded, key=lambda f: len(encoded[f]))
    return f"data:image/{fmt};base64,{base64.b64encode(encoded[fmt]).decode('ascii')}"


def thumbnail_classes(rows: list[GalleryRow]) -> dict[str, str]:
    """{image path: CSS class}, in order of first appearance; the CSS holds each image once."""
    return {path: f"img{i}" for i, path in enumerate(dict.fromkeys(row.image for row in rows))}


def thumbnail_css(classes: dict[str, str], data: ProcessedData) -> str:
    return "\n".join(f'.{name}{{background-image:url("{thumbnail_data_uri(data.images[data.image_row[path]])}")}}'
                     for path, name in classes.items())


def filter_select(name: str, label: str, counts: Counter) -> str:
    """A select of every value present, with how many shown rows carry it."""
    values = sorted(counts, key=FREQUENCY_ORDER.index) if name == "bucket" else sorted(counts)
    options = "".join(f'<option value="{escape(v)}">{escape(v)} ({counts[v]:,})</option>' for v in values)
    return (f'<label>{escape(label)} <select id="{name}"><option value="all">all ({sum(counts.values()):,})</option>'
            f"{options}</select></label>")


def row_html(row: GalleryRow, image_class: str) -> str:
    data = "".join(f' data-{name}="{escape(value)}"' for name, value in row.filter_values.items())
    verdict = row.filter_values["correct"]
    return (f'<tr class="row {verdict}"{data}>'
            f'<td><span class="thumb {image_class}" role="img" aria-label="{escape(row.image)}"></span></td>'
            f"<td>{escape(row.question)}</td><td>{escape(row.gold)}</td>"
            f'<td>{escape(row.prediction)} <span class="score">{row.score:.3f}</span></td>'
            f"<td>{verdict}</td><td>{escape(row.answer_type)}</td>"
            f"<td>{escape(row.bucket)} ({row.train_count:,})</td></tr>")


def left_out_note(rows: list[GalleryRow], shown: list[GalleryRow], max_rows: int) -> str:
    if len(shown) == len(rows):
        return ""
    wrong = sum(not row.correct for row in rows) - sum(not row.correct for row in shown)
    return (f'<p class="note">{len(rows) - len(shown):,} of {len(rows):,} test questions left out '
            f"({wrong:,} wrong, {len(rows) - len(shown) - wrong:,} correct): the page holds at most "
            f"report.gallery_max_rows = {max_rows:,} rows, wrong answers first.</p>")


# Filter rows by the selects; the URL hash mirrors the selects both ways. FILTERS (the select ids,
# the hash keys and the rows' data-* names) comes from Python's FILTERS, so the two cannot disagree.
SCRIPT = """
function applyFilters() {
  let shown = 0;
  for (const row of document.querySelectorAll("tr.row")) {
    const match = FILTERS.every((name) => {
      const value = document.getElementById(name).value;
      return value === "all" || row.dataset[name] === value;
    });
    row.hidden = !match;
    shown += match;
  }
  document.getElementById("shown").textContent = shown.toLocaleString("en-US");
}
function readHash() {
  const wanted = new URLSearchParams(location.hash.slice(1));
  for (const name of FILTERS) {
    const select = document.getElementById(name);
    const value = wanted.get(name);
    select.value = [...select.options].some((o) => o.value === value) ? value : "all";
  }
  applyFilters();
}
function writeHash() {
  const chosen = new URLSearchParams();
  for (const name of FILTERS) {
    const value = document.getElementById(name).value;
    if (value !== "all") chosen.set(name, value);
  }
  history.replaceState(null, "", "#" + chosen);
  applyFilters();
}
for (const name of FILTERS) document.getElementById(name).addEventListener("change", writeHash);
window.addEventListener("hashchange", readHash);
readHash();
"""

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
.filters label{margin-right:1.5em}
.note{color:#8a5a00}
table{border-collapse:collapse;margin-top:1em}
th,td{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{position:sticky;top:0;background:#f4f4f4}
.thumb{display:block;width:96px;height:96px;background:#eee center/contain no-repeat}
tr.wrong{background:#fdecea}
.score{color:#777;font-size:85%}
"""


def render_gallery(rows: list[GalleryRow], data: ProcessedData, *, title: str, max_rows: int) -> str:
    shown = cap_rows(rows, max_rows)
    classes = thumbnail_classes(shown)
    counts = {name: Counter(row.filter_values[name] for row in shown) for name, _ in FILTERS}
    header = "".join(f"<th>{h}</th>" for h in ("image", "question", "gold", "predicted (score)", "result",
                                               "answer type", "bucket (train questions)"))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Error gallery: {escape(title)}</title>",
        f"<style>{STYLE}\n{thumbnail_css(classes, data)}</style></head><body>",
        f"<h1>Error gallery: {escape(title)}</h1>",
        (f'<p><span id="shown">{len(shown):,}</span> of {len(shown):,} rows shown; '
         f"{sum(not row.correct for row in rows):,} wrong of {len(rows):,} test questions.</p>"),
        left_out_note(rows, shown, max_rows),
        '<p class="filters">' + "".join(filter_select(name, label, counts[name]) for name, label in FILTERS) + "</p>",
        f"<table><thead><tr>{header}</tr></thead><tbody>",
        *(row_html(row, classes[row.image]) for row in shown),
        "</tbody></table>",
        f"<script>const FILTERS = {json.dumps([name for name, _ in FILTERS])};{SCRIPT}</script></body></html>",
    ]) + "\n"


def write_gallery(out: Path, predictions: list[dict], data: ProcessedData, *, title: str, max_rows: int) -> dict:
    """Write the gallery atomically; return (and log) what it holds."""
    rows = gallery_rows(predictions, data)
    html = render_gallery(rows, data, title=title, max_rows=max_rows)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    summary = {"rows": min(len(rows), max_rows), "questions": len(rows), "wrong": sum(not row.correct for row in rows),
               "bytes": len(html.encode("utf-8"))}
    log.info("gallery %s: %s", out, summary)
    return summary
