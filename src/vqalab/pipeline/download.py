"""Step download: the chosen data set read from its source into the common record schema."""

from __future__ import annotations

from pathlib import Path

from vqalab.data.registry import chosen_dataset_config, download
from vqalab.params import Params


def download_data(params: Params, out: Path, *, downloads: Path) -> dict:
    """Read the chosen data set into ``out`` (``downloads`` keeps fetched files between runs); its manifest."""
    return download(params.dataset, chosen_dataset_config(params), out=out, downloads=downloads,
                    on_bad_record=params.download.on_bad_record,
                    max_images_per_split=params.download.max_images_per_split)
