"""Small files in each real data set's format, written by the tests."""

import io
import json
from pathlib import Path

from PIL import Image


def png_bytes(color=(255, 0, 0), size=(12, 10)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def write_image(path: Path, color=(255, 0, 0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color))
    return path


def write_vqa_rad_official(root: Path) -> Path:
    """Official layout: 'VQA_RAD Dataset Public.json' + 'VQA_RAD Image Folder/'."""
    rows = [
        {"qid": "0", "qid_linked_id": "link-0", "phrase_type": "freeform", "image_name": "synpic1.jpg", "question": "Is this a CT?",
         "question_frame": "Is this an image of a CT?", "question_type": "MODALITY", "answer": "Yes",
         "answer_type": "CLOSED "},
        {"qid": "1", "qid_linked_id": "link-1", "phrase_type": "para", "image_name": "synpic2.jpg", "question": "How many kidneys?",
         "question_frame": "NULL", "question_type": "COUNT", "answer": 2, "answer_type": "OPEN"},
        {"qid": "2", "qid_linked_id": "link-2", "phrase_type": "freeform", "image_name": "synpic3.jpg", "question": "Which organ?",
         "question_frame": "NULL", "question_type": "ORGAN", "answer": "The Liver", "answer_type": "OPEN"},
        {"qid": "3", "qid_linked_id": "link-3", "phrase_type": "test_freeform", "image_name": "synpic1.jpg", "question": "Is it normal?",
         "question_frame": "Is the image normal?", "question_type": "ABN", "answer": "no", "answer_type": "CLOSED"},
    ]
    root.mkdir(parents=True, exist_ok=True)
    (root / "VQA_RAD Dataset Public.json").write_text(json.dumps(rows))
    for i, name in enumerate(["synpic1.jpg", "synpic2.jpg", "synpic3.jpg"]):
        write_image(root / "VQA_RAD Image Folder" / name, (40 * i, 0, 0))
    return root


def write_parquet(path: Path, rows: list[tuple[bytes | None, str, str]]) -> Path:
    """Hugging Face image-data-set parquet: image {bytes, path}, question, answer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({
        "image": [{"bytes": data, "path": None} for data, _, _ in rows],
        "question": [q for _, q, _ in rows],
        "answer": [a for _, _, a in rows],
    })
    pq.write_table(table, path, row_group_size=2)
    return path


def write_slake(root: Path) -> Path:
    def row(qid, img, q, a, lang="en", answer_type="OPEN", content="Organ"):
        return {"qid": qid, "img_name": img, "question": q, "answer": a, "q_lang": lang,
                "answer_type": answer_type, "content_type": content}

    splits = {
        "train.json": [row(1, "xmlab1/source.jpg", "Which organ is shown?", "Lung"),
                       row(2, "xmlab1/source.jpg", "这是什么?", "肺", lang="zh"),
                       row(3, "xmlab2/source.jpg", "Is it abnormal?", "Yes", answer_type="CLOSED", content="Abnormality")],
        "validation.json": [row(4, "xmlab3/source.jpg", "Where is the lesion?", "Left Lung", content="Position")],
        "test.json": [row(5, "xmlab4/source.jpg", "Is this a CT?", "No", answer_type="CLOSED", content="Modality")],
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        (root / name).write_text(json.dumps(rows, ensure_ascii=False))
    for i in range(1, 5):
        write_image(root / "imgs" / f"xmlab{i}" / "source.jpg", (0, 30 * i, 0))
    return root


def write_daquar(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "qa.894.raw.train.txt").write_text(
        "what is on the desk in the image1 ?\nlamp\n"
        "what are the objects in the image1 ?\nchair, table\n\n"
        "how many chairs are in the image2 ?\ntwo\n"
    )
    (root / "qa.894.raw.test.txt").write_text("what is behind the sofa in the image3 ?\nwall\n")
    (root / "qa.37.raw.train.txt").write_text("what is the largest object in the image1 ?\ntable\n")
    (root / "qa.37.raw.reduced.test.txt").write_text("what is on the left side in the image3 ?\nchair\n")
    for i in (1, 2, 3):
        write_image(root / "nyu_depth_images" / f"image{i}.png", (0, 0, 50 * i))
    return root


# The official DAQUAR train file's typo: the image id glued to the word before ("th eimage999").
DAQUAR_GLUED_QUESTION = "how many drawers are visible in th eimage2 ?"


def write_daquar_with_glued_id(root: Path) -> Path:
    """``write_daquar`` plus one question whose image id is glued to the previous word, as in the
    official train file."""
    write_daquar(root)
    with (root / "qa.894.raw.train.txt").open("a") as fh:
        fh.write(f"{DAQUAR_GLUED_QUESTION}\n3\n")
    return root


def write_lines(path: Path, lines: list[str], *, encoding: str = "utf-8") -> Path:
    """A text file (CSV or JSONL) written line by line as given, in ``encoding``: hand-made files as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return path
