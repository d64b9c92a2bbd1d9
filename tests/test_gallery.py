"""The error gallery: rows, escaping, the row cap, and the page's filters in headless Chromium."""

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqalab.data.dataset import ProcessedData
from vqalab.data.schema import ANSWERS_FILE, IMAGE_INDEX_FILE, IMAGES_FILE, RECORDS_FILE, Record
from vqalab.io import write_json, write_jsonl
from vqalab.report.gallery import cap_rows, gallery_rows, render_gallery, write_gallery

# Debian's Chromium, or the first Chromium-family browser on PATH (GitHub's runners carry Chrome).
CHROMIUM = next((Path(found) for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), Path("/usr/bin/chromium"))
TRICKY_QUESTION = 'is there a <b>circle</b> & a "square"?'
TRICKY_IMAGE = 'images/test/a&"b".png'


def prediction(id_: str, question: str, gold: str, predicted: str, answer_type: str) -> dict:
    """A row of the evaluate stage's predictions file."""
    return {"id": id_, "question": question, "gold": gold, "prediction": predicted, "score": 0.75,
            "answer_type": answer_type, "correct": predicted == gold}


# Six test questions on three images; three are wrong. Train answers: yes 60 times (head),
# red 10 (body), circle 2 (tail); square and no never (unseen).
PREDICTIONS = [
    prediction("t0", TRICKY_QUESTION, "yes", "yes", "closed"),
    prediction("t1", "what colour is it?", "red", "<blue>", "open"),
    prediction("t2", "what shape is it?", "circle", "circle", "open"),
    prediction("t3", "what shape is it?", "square", "circle", "open"),
    prediction("t4", "is it round?", "no", "yes", "closed"),
    prediction("t5", "is it red?", "yes", "yes", "closed"),
]
TEST_IMAGES = {"t0": TRICKY_IMAGE, "t1": TRICKY_IMAGE, "t2": "images/test/b.png", "t3": "images/test/b.png",
               "t4": "images/test/c.png", "t5": "images/test/c.png"}


@pytest.fixture
def processed(tmp_path) -> ProcessedData:
    """A processed folder as the preprocess stage writes it, for PREDICTIONS."""
    folder = tmp_path / "processed"
    train = [Record(id=f"tr{i}", image="images/train/0.png", question="q?", answer=answer, answer_raw=answer,
                    split="train", answer_type="open")
             for i, answer in enumerate(["yes"] * 60 + ["red"] * 10 + ["circle"] * 2)]
    test = [Record(id=p["id"], image=TEST_IMAGES[p["id"]], question=p["question"], answer=p["gold"],
                   answer_raw=p["gold"], split="test", answer_type=p["answer_type"]) for p in PREDICTIONS]
    image_paths = sorted({r.image for r in train + test})
    write_jsonl(folder / RECORDS_FILE, (r.to_dict() for r in train + test))
    write_json(folder / ANSWERS_FILE, ["yes", "red", "circle"])
    write_json(folder / IMAGE_INDEX_FILE, image_paths)
    rng = np.random.default_rng(0)
    np.save(folder / IMAGES_FILE, rng.integers(0, 256, (len(image_paths), 3, 32, 32), dtype=np.uint8))
    return ProcessedData.load(folder)


def test_rows_carry_the_image_and_the_frequency_bucket_of_the_gold_answer(processed):
    rows = gallery_rows(PREDICTIONS, processed)
    assert [row.train_count for row in rows] == [60, 10, 2, 0, 0, 60]
    assert [row.bucket for row in rows] == ["head", "body", "tail", "unseen", "unseen", "head"]
    assert [row.image for row in rows] == [TEST_IMAGES[p["id"]] for p in PREDICTIONS]


def test_a_prediction_without_a_record_names_it(processed):
    with pytest.raises(ValueError, match="prediction 'nope' has no record"):
        gallery_rows([{**PREDICTIONS[0], "id": "nope"}], processed)


def test_text_is_escaped(processed):
    html = render_gallery(gallery_rows(PREDICTIONS, processed), processed, title="<m> & co", max_rows=10)
    assert "is there a &lt;b&gt;circle&lt;/b&gt; &amp; a &quot;square&quot;?" in html
    assert "&lt;blue&gt;" in html and 'aria-label="images/test/a&amp;&quot;b&quot;.png"' in html
    assert "Error gallery: &lt;m&gt; &amp; co" in html
    for raw in ("<b>circle", "<blue>", "<m>", 'a&"b"'):
        assert raw not in html


def test_the_cap_keeps_wrong_answers_first_and_says_how_many_were_left_out(processed):
    rows = gallery_rows(PREDICTIONS, processed)
    assert [row.prediction for row in cap_rows(rows, 4)] == ["<blue>", "circle", "yes", "yes"]  # t1, t3, t4, t0
    assert [row.correct for row in cap_rows(rows, 4)] == [False, False, False, True]

    html = render_gallery(rows, processed, title="t", max_rows=4)
    assert html.count('<tr class="row') == 4
    assert "2 of 6 test questions left out (0 wrong, 2 correct)" in html
    html = render_gallery(rows, processed, title="t", max_rows=2)
    assert html.count('<tr class="row') == 2
    assert "4 of 6 test questions left out (1 wrong, 3 correct)" in html
    assert "left out" not in render_gallery(rows, processed, title="t", max_rows=6)


def test_each_shown_image_is_embedded_once_and_nothing_is_fetched(processed):
    rows = gallery_rows(PREDICTIONS, processed)
    html = render_gallery(rows, processed, title="t", max_rows=10)
    assert html.count("data:image/") == 3  # three distinct images for six rows
    assert render_gallery(rows, processed, title="t", max_rows=1).count("data:image/") == 1  # t1's image only
    assert "http://" not in html and "https://" not in html


class VisibleRows(HTMLParser):
    """Counts the gallery rows without a ``hidden`` attribute and reads the shown-rows counter."""

    def __init__(self):
        super().__init__()
        self.visible, self.counter, self._in_counter = 0, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "row" in (attrs.get("class") or "").split() and "hidden" not in attrs:
            self.visible += 1
        self._in_counter = attrs.get("id") == "shown"

    def handle_data(self, data):
        if self._in_counter:
            self.counter = int(data.replace(",", ""))
            self._in_counter = False


def chromium(tmp_path: Path, *args: str) -> str:
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture
def gallery(processed, tmp_path) -> Path:
    out = tmp_path / "gallery.html"
    write_gallery(out, PREDICTIONS, processed, title="synthetic", max_rows=100)
    return out


needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no Chromium (or Chrome) on PATH: run `make chromium`")


@pytest.mark.browser
@needs_chromium
@pytest.mark.parametrize(("fragment", "expected"), [
    ("", len(PREDICTIONS)),
    ("#correct=wrong", sum(not p["correct"] for p in PREDICTIONS)),
    ("#correct=wrong&type=open", 2),  # t1, t3
    ("#bucket=unseen", 2),            # t3, t4
    ("#correct=correct&bucket=head", 2),  # t0, t5
    ("#type=nonsense", len(PREDICTIONS)),  # an unknown value falls back to all
])
def test_the_page_filters_rows_from_the_url_hash(gallery, tmp_path, fragment, expected):
    dom = VisibleRows()
    dom.feed(chromium(tmp_path, "--dump-dom", gallery.as_uri() + fragment))
    assert dom.visible == expected
    assert dom.counter == expected


@pytest.mark.browser
@needs_chromium
def test_the_page_renders_to_a_screenshot(gallery, tmp_path):
    png = tmp_path / "gallery.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,900", gallery.as_uri())
    assert png.stat().st_size > 0
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (1280, 900)
        colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(colours) > 10  # drawn content, not one blank colour
