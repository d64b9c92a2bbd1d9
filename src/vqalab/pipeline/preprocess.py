"""Step preprocess: the validation split, the answer vocabulary and the images resized for the model."""

from __future__ import annotations

from pathlib import Path

from vqalab.config import RESIZE_MODES
from vqalab.data.preprocess import preprocess
from vqalab.io import atomic_path
from vqalab.params import Params


def preprocess_data(params: Params, raw: Path, out: Path) -> dict:
    """Split, resize and index the download step's ``raw`` folder into ``out``, atomically; its statistics."""
    image_size, resize = params.family["image_size"], params.family["resize"]  # the model's, read before its config is typed
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"params: model.image_size must be a positive integer, got {image_size!r}")
    if resize not in RESIZE_MODES:
        raise ValueError(f"params: model.resize must be one of {RESIZE_MODES}, got {resize!r}")
    with atomic_path(out, is_dir=True) as tmp:
        stats = preprocess(raw, tmp, image_size=image_size, resize=resize,
                           seed=params.seed, val_fraction=params.preprocess.val_fraction,
                           val_split=params.preprocess.val_split, min_answer_count=params.preprocess.min_answer_count)
    return {"dataset": params.dataset, **stats}
