"""VQA-RAD (Lau et al., Scientific Data 2018): clinician-written questions on 315 radiology images.

Licence CC0 1.0. Sources:
- ``osf``: the official release (OSF project 89kps), downloaded as one archive;
- ``hf``: the Hugging Face data set ``flaviagiammarino/vqa-rad`` (parquet: image, question,
  answer; 1,793 / 451 questions; no answer_type, so yes/no answers count as closed);
- a local folder or archive in either layout (detected by its files).

``variant: public`` gives the 2,248 questions of the public JSON (1,797 train / 451 test).
``variant: frame`` adds every record's template-phrased ``question_frame`` (1,267) to train: the
3,515-question set of the MEVF / MMQ / PubMedCLIP papers. Its 284 frames of *test* records carry
the test answers into train, as in those papers; ``public`` has no such overlap. Frames are
``train_only`` records: a validation question keeps its frame in train, as a test question does.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from vqalab.data.collect import RecordCollector
from vqalab.data.fetch import download, extract, hf_dataset_snapshot, local_copy, sha256_of
from vqalab.data.parquet import read_parquet_vqa

log = logging.getLogger(__name__)

OFFICIAL_JSON = "VQA_RAD Dataset Public.json"
OFFICIAL_IMAGES = "VQA_RAD Image Folder"
# sha256 of the official JSON as published (the OSF release, file set 2018_06_011).
OFFICIAL_JSON_SHA256 = "948b7156059b864cf72344fb10669233526b175c243e5a046d20d4201d297a95"
OSF_ARCHIVE_URL = "https://files.osf.io/v1/resources/89kps/providers/osfstorage/?zip="
HF_REPO = "flaviagiammarino/vqa-rad"
VARIANTS = ("public", "frame")
PARAM = "dataset.source"


@dataclass(frozen=True, kw_only=True)
class VQARadConfig:  # conf/dataset/vqa_rad.yaml says what each value means
    source: str  # osf | hf | a local folder or archive
    variant: str

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")


def materialize(config: VQARadConfig, *, collector: RecordCollector, downloads: Path) -> None:
    root = locate(config.source, downloads)
    official = next(root.rglob(OFFICIAL_JSON), None)
    if official is not None:
        read_official(official, config.variant, collector)
    elif next(root.rglob("*.parquet"), None) is not None:
        if config.variant != "public":
            raise ValueError(f"dataset.variant = {config.variant!r} needs the official release: the "
                             f"Hugging Face copy has no question_frame field")
        read_parquet_vqa(root, collector, dataset="vqa_rad")
    else:
        raise FileNotFoundError(f"{root} holds neither the official VQA-RAD layout ({OFFICIAL_JSON!r}) nor parquet "
                                f"files; set {PARAM} to a folder with one of them")


def locate(source: str, downloads: Path) -> Path:
    if source == "osf":
        archive = download(OSF_ARCHIVE_URL, downloads / "vqa_rad_osf.zip", param=PARAM)
        return extract(archive, downloads / "vqa_rad_osf")
    if source == "hf":
        return hf_dataset_snapshot(HF_REPO, param=PARAM)
    return local_copy(source, param=PARAM, downloads=downloads)


def read_official(json_path: Path, variant: str, collector: RecordCollector) -> None:
    if (digest := sha256_of(json_path)) != OFFICIAL_JSON_SHA256:
        log.warning("%s differs from the official release (sha256 %s): counts may differ", json_path, digest)
    image_dir = json_path.parent / OFFICIAL_IMAGES
    rows = json.loads(json_path.read_text(encoding="utf-8"))
    for name in sorted({str(row.get("image_name", "")) for row in rows}):
        if name:
            collector.add_image_file(f"images/{name}", image_dir / name)
    frames = []
    for index, row in enumerate(rows):
        split = "test" if str(row.get("phrase_type", "")).startswith("test") else "train"
        # qid_linked_id joins a question, its rephrasings and (below) its frame into one group.
        common = dict(image=f"images/{row.get('image_name')}", answer=row.get("answer"),
                      answer_type=str(row.get("answer_type", "")), question_type=row.get("question_type"),
                      group=row.get("qid_linked_id"))
        where = f"{json_path.name}[{index}] (qid {row.get('qid')})"
        collector.add(id=f"vqa_rad-{row.get('qid')}", question=row.get("question"), split=split, where=where, **common)
        frame = row.get("question_frame")
        if variant == "frame" and frame and frame != "NULL":
            frames.append(dict(id=f"vqa_rad-{row.get('qid')}-frame", question=frame, split="train", train_only=True,
                               where=f"{where} question_frame", **common))
    for frame in frames:
        collector.add(**frame)


CONFIG_CLASS = VQARadConfig
