"""Step preprocess: the validation split, the answer vocabulary and the images resized for the model."""

from __future__ import annotations

from pathlib import Path

from vqalab.config import check_positive_int, check_resize
from vqalab.data.preprocess import preprocess
from vqalab.io import atomic_path
from vqalab.params import Params


def preprocess_data(params: Params, raw: Path, out: Path) -> dict:
    """Split, resize and index the download step's ``raw`` folder into ``out``, atomically; its statistics."""
    image_size, resize = params.family["image_size"], params.family["resize"]  # the model's, read before its config is typed
    check_positive_int(image_size, "params: model.image_size")
    check_resize(resize, "params: model.resize")
    with atomic_path(out, is_dir=True) as tmp:
        stats = preprocess(raw, tmp, image_size=image_size, resize=resize,
                           seed=params.seed, val_fraction=params.preprocess.val_fraction,
                           val_split=params.preprocess.val_split, min_answer_count=params.preprocess.min_answer_count)
    return {"dataset": params.dataset, **stats}
